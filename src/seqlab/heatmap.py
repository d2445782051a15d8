"""The transition-matrix heatmap logged with every run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_transitions(matrix: np.ndarray, labels: list[str], title: str, path: str,
                     forbidden: np.ndarray | None = None, colorbar: str = "score") -> None:
    """Save a [K, K] (from rows, to columns) heatmap with tag names on both axes.

    Cells in `forbidden` (bool [K, K]) are drawn grey and hatched: the
    constrained CRF never uses them, so their learned values mean nothing.
    """
    k = len(labels)
    size = max(5.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    shown = np.ma.masked_where(forbidden, matrix) if forbidden is not None else matrix
    cmap = plt.get_cmap("RdBu_r" if colorbar == "score" else "viridis").with_extremes(bad="#d0d0d0")
    if colorbar == "score":
        lim = float(np.abs(np.ma.compressed(np.ma.asarray(shown))).max() or 1.0)
        image = ax.imshow(shown, cmap=cmap, vmin=-lim, vmax=lim)
    else:
        image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1)
    if forbidden is not None:
        for i, j in zip(*np.nonzero(forbidden)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#707070", lw=0))
    ax.set_xticks(range(k), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("to tag")
    ax.set_ylabel("from tag")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=colorbar)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
