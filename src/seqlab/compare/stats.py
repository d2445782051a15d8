"""Significance tests for comparing taggers (numpy and scipy only).

Two questions, two tests:

* Across seeds (Reimers & Gurevych 2017): is the score distribution of one
  configuration over random seeds higher than another's? `welch_t_test` over
  the per-seed scores (no equal-variance assumption).
* Across cross-validation folds: is one configuration better on the same folds? `paired_t_test`
  over per-fold scores (Dietterich 1998 warns that folds overlap in training data: read it as a guide).
* On one shared test set (Dror et al. 2018): is one system better on these
  sentences? `approximate_randomization` over sentence-level entity counts:
  under the null hypothesis the two systems are exchangeable on every
  sentence, so each sentence's counts are swapped between them at random and
  the micro-F1 difference recomputed; p is the share of shuffles at least as
  extreme as the observed difference (with the usual +1 correction).
"""

from __future__ import annotations

import numpy as np

WELCH = "Welch's t-test over per-seed scores"
PAIRED_FOLDS = "paired t-test over cross-validation folds (each fold's runs averaged)"
RANDOMIZATION = "paired approximate randomisation over test sentences"


def welch_t_test(a: list[float], b: list[float]) -> float:
    """Two-sided p-value that the means of `a` and `b` differ (n >= 2 each). Equal samples give 1."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least 2 scores per group")
    if np.var(a) == 0 and np.var(b) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0  # no spread: the means either agree or differ surely
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return 1.0 if np.isnan(p) else p


def paired_t_test(a: list[float], b: list[float]) -> float:
    """Two-sided p-value that paired scores `a[i]`, `b[i]` (e.g. one per cross-validation fold) differ in mean.
    Identical differences give 1 if they are all 0, else 0."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError("a paired t-test needs two equally long lists of at least 2 scores")
    diff = a - b
    if np.var(diff) == 0:
        return 1.0 if diff[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def t_interval(scores: list[float], level: float = 0.95) -> tuple[float, float]:
    """The `level` confidence interval of the mean of `scores` (Student's t; one score: the score itself)."""
    from scipy import stats

    x = np.asarray(scores, float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return float(x.mean() - half), float(x.mean() + half)


def sentence_counts(gold: list[list[str]], pred: list[list[str]]) -> np.ndarray:
    """Per-sentence entity counts float [N, 3]: true positives, false positives, false negatives.

    Entities are read as seqeval's default (conlleval) mode reads them, so the
    micro F1 of the summed counts equals seqeval's `f1_score(gold, pred)`.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    out = np.zeros((len(gold), 3))
    for i, (g, p) in enumerate(zip(gold, pred)):
        g_set, p_set = set(get_entities(list(g))), set(get_entities(list(p)))
        out[i] = (len(g_set & p_set), len(p_set - g_set), len(g_set - p_set))
    return out


def micro_f1(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from counts [..., N, 3] summed over N -> [...]; 0 where there is nothing to score."""
    tp, fp, fn = (counts[..., i].sum(-1) for i in range(3))
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def approximate_randomization(a: np.ndarray, b: np.ndarray, resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value that systems a and b (counts [N, 3] each, same sentences) differ in micro F1.

    With several runs per system, pass the mean counts over its runs: the
    test then compares the systems' expected behaviour on each sentence.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs counts for the same sentences, got {a.shape} and {b.shape}")
    observed = abs(micro_f1(a) - micro_f1(b))
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(a.size, 1))  # resamples per step: bounded memory for large test sets
    extreme = 0
    for start in range(0, resamples, chunk):
        swap = rng.random((min(chunk, resamples - start), len(a), 1)) < 0.5  # [R, N, 1]
        shuffled_a = np.where(swap, b[None], a[None])  # [R, N, 3]
        shuffled_b = np.where(swap, a[None], b[None])
        extreme += int(np.sum(np.abs(micro_f1(shuffled_a) - micro_f1(shuffled_b)) >= observed - 1e-12))
    return float((extreme + 1) / (resamples + 1))
