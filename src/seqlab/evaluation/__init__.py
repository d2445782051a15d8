"""Evaluation: scores of predicted tags (scores.py: span F1 with seqeval, token accuracy) and the
figures logged with them (figures.py)."""

from seqlab.evaluation import figures
from seqlab.evaluation.scores import Scores, entity_scores, has_entities, invalid_transition_rate, score

__all__ = ["Scores", "entity_scores", "figures", "has_entities", "invalid_transition_rate", "score"]
