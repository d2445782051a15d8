"""Whether a tagger's probabilities mean what they say: expected calibration error and reliability diagrams.

    expected_calibration_error(confidence [N], correct bool [N]) -> float in [0, 1]

ECE (Guo et al. 2017): the N predictions fall into 15 equal-width bins of confidence; ECE is the sum over
bins of (bin size / N) * |accuracy of the bin - mean confidence of the bin|. 0 is perfectly calibrated.
A run logs it for tokens (the probability of each token's output tag, correct when it equals the gold tag)
and for the entities it predicted (their confidence, correct when the gold has the same type and span).
"""

from __future__ import annotations

import numpy as np

from seqlab.evaluation.figures import _finish, plt

BINS = 15


def bin_table(confidence, correct, bins: int = BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of [0, 1]: (count int [bins], mean confidence [bins], accuracy [bins]); NaN where empty."""
    confidence = np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
    correct = np.asarray(correct, np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)  # a confidence of 1.0 is in the last bin
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, correct, minlength=bins) / count
    return count, mean_conf, accuracy


def expected_calibration_error(confidence, correct, bins: int = BINS) -> float:
    """ECE over `bins` equal-width bins; 0.0 when there is nothing to calibrate."""
    count, mean_conf, accuracy = bin_table(confidence, correct, bins)
    if count.sum() == 0:
        return 0.0
    full = count > 0
    return float(np.sum(count[full] / count.sum() * np.abs(accuracy[full] - mean_conf[full])))


def plot_reliability(panels: dict[str, tuple], bins: int = BINS, path: str | None = None):
    """One reliability diagram per panel {"tokens": (confidence, correct), ...}: the accuracy of each bin
    against its mean confidence (the diagonal is perfect calibration), with the bins' counts below."""
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 5.2), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    edges = np.linspace(0, 1, bins + 1)
    for column, (name, (confidence, correct)) in enumerate(panels.items()):
        count, mean_conf, accuracy = bin_table(confidence, correct, bins)
        top, bottom = axes[0, column], axes[1, column]
        top.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
        top.bar(edges[:-1], np.nan_to_num(accuracy), width=1 / bins, align="edge", color="#3182bd", alpha=0.8,
                edgecolor="white", label="accuracy")
        top.plot(mean_conf, accuracy, "o", color="#e6550d", markersize=3, label="mean confidence")
        top.set_ylim(0, 1)
        top.set_title(f"{name}: ECE {expected_calibration_error(confidence, correct, bins):.3f} "
                      f"(n = {int(count.sum())})", fontsize=10)
        top.set_ylabel("accuracy")
        top.legend(fontsize=7, loc="upper left")
        bottom.bar(edges[:-1], count, width=1 / bins, align="edge", color="#756bb1", edgecolor="white")
        bottom.set_xlabel("confidence")
        bottom.set_ylabel("count")
    fig.tight_layout()
    return _finish(fig, path)
