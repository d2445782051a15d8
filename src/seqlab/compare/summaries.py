"""What a multirun's parent shows about its protocol: scores over cross-validation folds, and learning curves.

    python -m experiments.run -m data.folds=5 'data.fold=range(5)' +encoder=cnn
        -> cross_validation.md on the parent: per group, mean ± std of the dev and test scores over the folds
           (and, with one group, the metrics cv_dev_mean, cv_dev_std, cv_test_mean, cv_test_std)
    python -m experiments.run -m data.train_fraction=0.1,0.3,1.0 seed=1,2,3 +encoder=cnn compare.by=[head]
        -> learning_curve.png and learning_curve.csv: per group and fraction, the mean and its 95 % interval

A group is one value of each `by` key (compare.by, else what the sweep varies besides folds, fractions
and seeds), read from the runs as seqlab.compare.leaderboard.group_runs reads it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from seqlab.compare.leaderboard import at_largest_fraction, group_runs, train_fraction
from seqlab.compare.stats import t_interval


def grouped(runs: list, by: list[str]) -> dict[str, list]:
    """Runs by group label ("head=crf, encoder=cnn"; "all runs" without keys), in first-seen order."""
    return group_runs(runs, by, "all runs")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


# ---------------------------------------------------------------- cross-validation
def cross_validation(runs: list, by: list[str], dev_metric: str, test_metric: str) -> tuple[str, dict[str, float]]:
    """Markdown table of mean ± std over folds per group, and cv_* metrics when there is one group; runs of a
    learning curve count at their largest data.train_fraction. ("", {}) when no run carries a `fold` tag."""
    runs = [r for r in runs if "fold" in r.data.tags and test_metric in r.data.metrics]
    if not runs:
        return "", {}
    runs, _ = at_largest_fraction(runs)
    lines = [f"| group | folds | runs | {dev_metric} mean ± std | {test_metric} mean ± std |", "|---|---|---|---|---|"]
    metrics: dict[str, float] = {}
    groups = grouped(runs, by)
    for label, members in groups.items():
        folds = sorted({int(r.data.tags["fold"]) for r in members})
        dev = _mean_std([r.data.metrics[dev_metric] for r in members if dev_metric in r.data.metrics] or [float("nan")])
        test = _mean_std([r.data.metrics[test_metric] for r in members])
        lines.append(f"| {label} | {','.join(map(str, folds))} | {len(members)} | {dev[0]:.4f} ± {dev[1]:.4f} | "
                     f"{test[0]:.4f} ± {test[1]:.4f} |")
        if len(groups) == 1:
            metrics = {"cv_dev_mean": dev[0], "cv_dev_std": dev[1], "cv_test_mean": test[0], "cv_test_std": test[1],
                       "cv_folds": float(len(folds))}
    total = runs[0].data.tags.get("folds", "?")
    lines += ["", f"Cross-validation over {total} folds of train+dev (the test set is the same in every fold); "
                  "std is the sample standard deviation over the group's runs."]
    return "\n".join(lines) + "\n", metrics


# ---------------------------------------------------------------- learning curves
@dataclass
class CurvePoint:
    group: str
    fraction: float
    train_sentences: float  # mean over the point's runs (NaN where runs did not log it)
    scores: list[float]

    @property
    def row(self) -> dict:
        mean, std = _mean_std(self.scores)
        low, high = t_interval(self.scores)
        return {"group": self.group, "train_fraction": self.fraction, "train_sentences": self.train_sentences,
                "n": len(self.scores), "mean": mean, "std": std, "ci95_low": low, "ci95_high": high}


def learning_curve(runs: list, by: list[str], metric: str) -> list[CurvePoint]:
    """One point per group and `data.train_fraction`, in fraction order; [] unless the runs span 2+ fractions."""
    runs = [r for r in runs if metric in r.data.metrics]
    if len({train_fraction(r) for r in runs}) < 2:
        return []
    points = []
    for label, members in grouped(runs, by).items():
        for f in sorted({train_fraction(r) for r in members}):
            at = [r for r in members if train_fraction(r) == f]
            sizes = [r.data.metrics["train_sentences"] for r in at if "train_sentences" in r.data.metrics]
            points.append(CurvePoint(label, f, float(np.mean(sizes)) if sizes else float("nan"),
                                     [r.data.metrics[metric] for r in at]))
    return points


def curve_csv(points: list[CurvePoint]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(points[0].row))
    writer.writeheader()
    writer.writerows(p.row for p in points)
    return out.getvalue()


def plot_curve(points: list[CurvePoint], metric: str):
    """The learning curve: per group, the mean against the training fraction with its 95 % interval shaded,
    each run a dot, each mean labelled with its training sentences. Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label in dict.fromkeys(p.group for p in points):
        line = [p for p in points if p.group == label]
        x = [p.fraction for p in line]
        rows = [p.row for p in line]
        drawn = ax.plot(x, [r["mean"] for r in rows], marker="o", label=label)[0]
        ax.fill_between(x, [r["ci95_low"] for r in rows], [r["ci95_high"] for r in rows], color=drawn.get_color(), alpha=0.2)
        for p, r in zip(line, rows):
            ax.scatter([p.fraction] * len(p.scores), p.scores, s=10, color=drawn.get_color(), alpha=0.5)
            if np.isfinite(p.train_sentences):
                ax.annotate(f"{p.train_sentences:.0f}", (p.fraction, r["mean"]), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color=drawn.get_color())
    ax.set_xlabel("data.train_fraction (share of the training sentences)")
    ax.set_ylabel(metric)
    ax.set_title(f"learning curve: mean {metric} with its 95% interval (t), runs as dots,\n"
                 "the number of training sentences beside each mean", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
