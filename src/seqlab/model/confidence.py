"""Confidence on every prediction: a sentence's decoded path with each token's probability, its entities'
confidence and the n best paths, in the output scheme (docs/guide.md#confidence).

Rules:
- a token's score is the probability of its output tag: the head's p(y_t = k | x) (the CRF's exact
  marginal, or the softmax) summed over the training labels the output scheme writes as that tag
  (`task.output_groups`: BIOES's B-X and S-X are both IOB2's B-X);
- an entity's score is the lowest score of its tokens: an upper bound of the probability that the model
  gives the whole span (exact for one token), and the weakest link a reader checks first;
- an n-best path's probability is p(path | x) under the head's model (for the softmax, the product of its
  tokens' probabilities); the n best are distinct in the training scheme, so two may read the same in IOB2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scored:
    """One sentence of n tokens as the head scored it: ids int32 [n] (training scheme), probs float32 [n, K],
    and with n-best paths int32 [k, n] with their log-probabilities float32 [k] (-inf past the legal ones)."""

    ids: np.ndarray
    probs: np.ndarray
    paths: np.ndarray | None = None
    log_probs: np.ndarray | None = None


def token_scores(task, scored: Scored) -> np.ndarray:
    """float [n]: each token's probability of its output tag (the sum over its label's output group)."""
    if len(scored.ids) == 0:
        return np.zeros(0, np.float64)
    groups = task.output_groups()  # [K]
    same = (groups[:, None] == groups[None, :]).astype(np.float64)  # [K, K]: 1 where two labels read the same
    grouped = scored.probs.astype(np.float64) @ same  # [n, K]: each label's group probability
    return np.clip(grouped[np.arange(len(scored.ids)), scored.ids], 0.0, 1.0)


def entity_confidences(spans: list[tuple[str, int, int]], scores: np.ndarray) -> list[float]:
    """The lowest token score of each (type, start, end) span."""
    return [float(scores[start:end].min()) for _, start, end in spans]


def scored_sentence(task, tokens: list[str], scored: Scored, with_scores: bool) -> dict:
    """The dict `Tagger.tag(..., scores=..., nbest=...)` returns for one sentence."""
    tags = task.to_output(task.names(scored.ids))
    out: dict = {"tags": tags}
    if with_scores:
        scores = token_scores(task, scored)
        out["scores"] = [round(float(p), 6) for p in scores]
        if task.kind.spans:
            spans = task.output_spans(tags)
            out["entities"] = [{"type": kind, "start": start, "end": end, "text": " ".join(tokens[start:end]),
                                "score": round(conf, 6)}
                               for (kind, start, end), conf in zip(spans, entity_confidences(spans, scores))]
    if scored.paths is not None:
        out["nbest"] = [{"tags": task.to_output(task.names(path)), "probability": float(np.exp(lp))}
                        for path, lp in zip(scored.paths, scored.log_probs) if np.isfinite(lp)]
    return out
