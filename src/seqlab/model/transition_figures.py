"""The heads' transition figures (transition_matrix.png): a CRF's learned scores, or the transitions
a softmax head predicted.

Every figure carries its own legend: what hatching, grey cells and the extra start row / end column
mean is written on the figure, not only here. Each function returns the (closed) matplotlib Figure,
and also saves it as a PNG when given a `path`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

START, END = "<start>", "<end>"
GREY = "#d0d0d0"


def _finish(fig, path: str | None):
    if path:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def tag_bigram_counts(sequences, k: int) -> np.ndarray:
    """Counts of predicted transitions [K + 1, K + 1] from tag-id sequences: row 0 is <start>, column K is <end>.

    counts[0, j]: sentences starting with tag j; counts[i + 1, j]: tag i followed by tag j;
    counts[i + 1, K]: sentences ending with tag i. Ids outside [0, K) are skipped.
    """
    counts = np.zeros((k + 1, k + 1))
    for seq in sequences:
        ids = [int(i) for i in seq if 0 <= int(i) < k]
        if not ids:
            continue
        counts[0, ids[0]] += 1
        counts[ids[-1] + 1, k] += 1
        for a, b in zip(ids, ids[1:]):
            counts[a + 1, b] += 1
    return counts


def _axes_for(k: int):
    size = max(5.0, 0.45 * (k + 1) + 2.5)
    return plt.subplots(figsize=(size + 1.5, size))


def _hatch(ax, cells, color="#707070"):
    for i, j in cells:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor=color, lw=0))


def _frame(ax, fig, image, labels, title, colorbar, legend):
    """Tick labels (<start> row, <end> column), separators, title, colour bar and legend."""
    k = len(labels)
    ax.set_xticks(range(k + 1), [*labels, END], rotation=90, fontsize=8)
    ax.set_yticks(range(k + 1), [START, *labels], fontsize=8)
    ax.axhline(0.5, color="black", lw=0.8)
    ax.axvline(k - 0.5, color="black", lw=0.8)
    ax.set_xlabel("to tag")
    ax.set_ylabel("from tag")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=colorbar)
    if legend:
        ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.004 * k), fontsize=8, frameon=False)
    fig.tight_layout()


def plot_crf_transitions(trans: np.ndarray, start: np.ndarray, end: np.ndarray, labels: list[str],
                         allowed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, scheme: str = "",
                         path: str | None = None):
    """The CRF's learned scores: [K + 1, K + 1] with a <start> row and an <end> column.

    trans [K, K] (from, to), start [K], end [K]. `allowed` = (trans [K, K], start [K], end [K]) bool
    masks of a constrained CRF: the other cells are drawn grey and hatched, and the legend says they
    are forbidden by `scheme` (never decoded, so their learned values mean nothing).
    """
    k = len(labels)
    grid = np.full((k + 1, k + 1), np.nan)
    grid[0, :k], grid[1:, :k], grid[1:, k] = start, trans, end
    forbidden = np.zeros((k + 1, k + 1), bool)
    forbidden[0, k] = True  # <start> -> <end>: an empty sentence, no score
    if allowed is not None:
        forbidden[0, :k], forbidden[1:, :k], forbidden[1:, k] = ~allowed[1], ~allowed[0], ~allowed[2]
    shown = np.ma.masked_where(forbidden | np.isnan(grid), grid)
    lim = float(np.abs(np.ma.compressed(shown)).max() or 1.0) if shown.count() else 1.0
    fig, ax = _axes_for(k)
    image = ax.imshow(shown, cmap=plt.get_cmap("RdBu_r").with_extremes(bad=GREY), vmin=-lim, vmax=lim)
    legend = []
    if allowed is not None:
        cells = [(i, j) for i, j in zip(*np.nonzero(forbidden)) if (i, j) != (0, k)]
        _hatch(ax, cells)
        legend.append(Patch(facecolor=GREY, edgecolor="#707070", hatch="///",
                            label=f"forbidden by {scheme.upper() or 'the tag scheme'}: never decoded, value meaningless"))
    _frame(ax, fig, image, labels, "CRF transition scores: <start> row, tag-to-tag, <end> column", "learned score", legend)
    return _finish(fig, path)


def plot_predicted_transitions(counts: np.ndarray, labels: list[str],
                               allowed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, scheme: str = "",
                               path: str | None = None):
    """What a tagger predicted: row-normalised counts [K + 1, K + 1] (<start> row, <end> column).

    Rows of tags that were never predicted are grey (not "0 %"); forbidden transitions that were
    predicted anyway are hatched red.
    """
    k = len(labels)
    rows = counts.sum(axis=1, keepdims=True)
    freq = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    never = np.broadcast_to(rows == 0, counts.shape).copy()
    never[0, k] = True
    fig, ax = _axes_for(k)
    image = ax.imshow(np.ma.masked_where(never, freq), cmap=plt.get_cmap("viridis").with_extremes(bad=GREY), vmin=0, vmax=1)
    legend = [Patch(facecolor=GREY, label="tag never predicted (no row to show)")]
    if allowed is not None:
        forbidden = np.zeros((k + 1, k + 1), bool)
        forbidden[0, :k], forbidden[1:, :k], forbidden[1:, k] = ~allowed[1], ~allowed[0], ~allowed[2]
        broken = list(zip(*np.nonzero(forbidden & (counts > 0))))
        _hatch(ax, broken, color="#e31a1c")
        legend.append(Patch(facecolor="none", edgecolor="#e31a1c", hatch="///",
                            label=f"forbidden by {scheme.upper() or 'the tag scheme'}, predicted anyway ({len(broken)} kinds)"))
    _frame(ax, fig, image, labels, "Predicted tag transitions on test (share of each row)", "share of the row", legend)
    return _finish(fig, path)
