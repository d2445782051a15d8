"""Evaluation: scores of predicted tags (scores.py: span F1 with seqeval, token accuracy), the figures
logged with them (figures.py) and the calibration of their probabilities (calibration.py)."""

from seqlab.evaluation import calibration, figures
from seqlab.evaluation.scores import Scores, entity_scores, has_entities, invalid_transition_rate, score

__all__ = ["Scores", "calibration", "entity_scores", "figures", "has_entities", "invalid_transition_rate", "score"]
