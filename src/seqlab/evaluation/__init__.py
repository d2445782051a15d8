"""Evaluation: scores of predicted tags (scores.py: span F1 with seqeval, token accuracy), the figures
logged with them (figures.py), the calibration of their probabilities (calibration.py) and the latency of
tagging one sentence at a time (latency.py)."""

from seqlab.evaluation import calibration, figures, latency
from seqlab.evaluation.scores import Scores, entity_scores, has_entities, invalid_transition_rate, score

__all__ = ["Scores", "calibration", "latency", "entity_scores", "figures", "has_entities", "invalid_transition_rate", "score"]
