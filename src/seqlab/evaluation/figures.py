"""The evaluation figures logged with runs: per-type F1 bars and a search's dev curves.

Each function returns the (closed) matplotlib Figure, for the run's artifacts, and also saves it as a
PNG when given a `path`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _finish(fig, path: str | None):
    if path:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def plot_f1_by_type(f1: dict[str, float], support: dict[str, int], title: str = "test entity F1 by type",
                    xlabel: str = "F1 (n = gold entities of the type)", path: str | None = None):
    """Horizontal bars, best type on top, with each type's gold count (entities, or tokens for a tag)."""
    kinds = sorted(f1, key=lambda k: f1[k])
    fig, ax = plt.subplots(figsize=(6.5, max(2.0, 0.4 * len(kinds) + 1.2)))
    if kinds:
        bars = ax.barh(range(len(kinds)), [f1[k] for k in kinds], color="#3182bd")
        ax.set_yticks(range(len(kinds)), [f"{k} (n={support.get(k, 0)})" for k in kinds], fontsize=8)
        for bar, kind in zip(bars, kinds):
            ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{f1[kind]:.3f}", va="center", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no entities in gold nor predictions", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


def plot_trial_curves(curves: dict[str, list[tuple[int, float]]], metric: str, best: str | None = None,
                      path: str | None = None):
    """One line per search trial: `metric` per epoch; the best trial drawn thick."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, points in sorted(curves.items()):
        if not points:
            continue
        steps, values = zip(*sorted(points))
        thick = name == best
        ax.plot(steps, values, marker="o", ms=3, lw=2.5 if thick else 1, alpha=1 if thick else 0.6,
                label=f"{name} (best)" if thick else name, zorder=3 if thick else 2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch, one line per trial", fontsize=10)
    ax.grid(alpha=0.3)
    if len(curves) <= 20:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _finish(fig, path)
