"""Leaderboards from the MLflow store: per-group mean, spread and significance.

    python -m experiments.compare --sweep <parent run id> --by head
    python -m experiments.compare --experiment seqlab --by encoder,head --filter "params.data.name = 'wnut16'"

Runs are grouped by tags (encoder, head, data) or config keys (words.chars,
optimizer.lr, ...). Each group gets n, mean, std, min and max of the metric.
Each group is tested against the best one (highest mean), twice where it can be:

* across seeds: Welch's t-test over the runs' scores (seqlab.compare.stats.welch_t_test); when every
  group ran on the same cross-validation folds (`fold` tags), a paired t-test over the folds instead;
* on the shared test set, when every run has the same test digest and logged
  its `test_predictions.jsonl`: paired approximate randomisation over the
  sentences' entity counts (seqlab.compare.stats.approximate_randomization).

Runs of a learning curve (several `data.train_fraction`s) are compared at the largest fraction.

Writes leaderboard.csv, leaderboard.md and leaderboard.png, and logs them on
the sweep's parent run, or on a new comparison run when the selection is not
one sweep (a multirun's parent gets it when `compare.by` is set:
seqlab.jobs.sweep.finish).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from seqlab.compare import stats
from seqlab.config import COMPARE_TAGS
from seqlab.errors import SeqlabError

DEFAULT_METRIC = "test_entity_f1"
SPAN_METRICS = ("test_entity_f1", "test_chunk_f1")  # what the paired test (per-sentence span counts) can score


def task_metrics(runs: list) -> tuple[str, str]:
    """(dev, test) metric names of the runs' task (their `task` tag; ner for runs that predate it)."""
    from seqlab.config.choices import TASKS

    tasks = {r.data.tags.get("task", "ner") for r in runs} or {"ner"}
    if len(tasks) > 1:
        raise ComparisonError(f"cannot compare runs of different tasks ({', '.join(sorted(tasks))}): select one task")
    kind = TASKS.get(tasks.pop(), TASKS["ner"])
    return f"best_{kind.monitor}", f"test_{kind.metric}"
PREDICTIONS = "test_predictions.jsonl"


class ComparisonError(SeqlabError):
    """The selected runs cannot be compared (too few per group, different test sets, ...)."""


@dataclass
class Group:
    label: str
    runs: list  # mlflow Run objects
    scores: list[float]
    p_seeds: float | None = None
    p_paired: float | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0


@dataclass
class Leaderboard:
    metric: str
    by: list[str]
    groups: list[Group]  # best first
    paired_note: str = ""
    notes: list[str] = field(default_factory=list)
    across: str = "seeds"  # what p_seeds tests across: "seeds" (Welch) or "folds" (paired by fold)

    @property
    def across_test(self) -> str:
        """The test behind p_seeds, in words."""
        return stats.PAIRED_FOLDS if self.across == "folds" else stats.WELCH

    def rows(self) -> list[dict]:
        return [{"group": g.label, "n": len(g.scores), "mean": g.mean, "std": g.std, "min": min(g.scores),
                 "max": max(g.scores), "p_seeds": g.p_seeds, "p_paired": g.p_paired} for g in self.groups]

    def markdown(self) -> str:
        best = self.groups[0].label
        fmt = lambda p: "best" if p is None else f"{p:.4f}"  # noqa: E731
        lines = [f"| {' / '.join(self.by)} | n | mean {self.metric} | std | min | max | p ({self.across}) | p (paired) |",
                 "|---|---|---|---|---|---|---|---|"]
        for g, row in zip(self.groups, self.rows()):
            paired = "best" if g is self.groups[0] else ("n/a" if g.p_paired is None else f"{g.p_paired:.4f}")
            lines.append(f"| {row['group']} | {row['n']} | {row['mean']:.4f} | {row['std']:.4f} | {row['min']:.4f} | "
                         f"{row['max']:.4f} | {fmt(g.p_seeds)} | {paired} |")
        lines += ["", f"p ({self.across}): {self.across_test} ({self.metric}), each group against the best group, {best}."]
        lines.append(f"p (paired): {self.paired_note}" if self.paired_note else "p (paired): not computed")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.rows()[0]))
        writer.writeheader()
        writer.writerows(self.rows())
        return out.getvalue()


def group_value(run, key: str) -> str:
    """The value of `key` for a run: a tag for encoder/head/data/tuner, else the config param."""
    if key.startswith("tags."):
        return run.data.tags.get(key[5:], "?")
    if key.startswith("params."):
        return run.data.params.get(key[7:], "?")
    if key in COMPARE_TAGS and key in run.data.tags:
        return run.data.tags[key]
    for candidate in (key, f"{key}.name"):
        if candidate in run.data.params:
            return run.data.params[candidate]
    nested = {k[len(key) + 1:]: v for k, v in run.data.params.items() if k.startswith(f"{key}.")}
    if nested:  # a mapping, logged one param per entry: head.class_weights={O: 0.5} -> head.class_weights.O
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(nested.items())) + "}"
    return "?"


def group_runs(runs: list, by: list[str], label_without_keys: str = "") -> dict[str, list]:
    """Runs by group label ("head=crf, encoder=cnn"; `label_without_keys` when `by` is empty), first-seen order."""
    out: dict[str, list] = {}
    for run in runs:
        label = ", ".join(f"{k}={group_value(run, k)}" for k in by) or label_without_keys
        out.setdefault(label, []).append(run)
    return out


def train_fraction(run) -> float:
    """The run's data.train_fraction (1 for runs that predate it)."""
    return float(run.data.params.get("data.train_fraction", 1.0))


def build(client, runs: list, by: list[str], metric: str = DEFAULT_METRIC, resamples: int = 10000,
          seed: int = 0, higher_is_better: bool = True) -> Leaderboard:
    """Group `runs` by `by`, score them on `metric`, test every group against the best one
    (the highest mean, or the lowest with `higher_is_better=False`, e.g. for an error rate)."""
    if not by:
        raise ComparisonError("compare needs keys to group by, e.g. --by head (or compare.by=[head])")
    runs = [r for r in runs if metric in r.data.metrics]
    if not runs:
        raise ComparisonError(f"no finished run in the selection has the metric {metric}")
    runs, fraction_note = at_largest_fraction(runs)
    grouped = group_runs(runs, by)
    small = {label: len(rs) for label, rs in grouped.items() if len(rs) < 2}
    if small:
        raise ComparisonError(
            "cannot compare: " + ", ".join(f"{label} has n={n}" for label, n in small.items())
            + " run(s); each group needs at least 2 runs (e.g. several seeds: seed=1,2,3) for a mean, a spread and a test")
    if len(grouped) < 2:
        raise ComparisonError(f"cannot compare: all {len(runs)} runs fall in one group ({next(iter(grouped))}); "
                              f"group by a key that varies")
    digests = {r.data.tags.get("test_digest") for r in runs}
    if len(digests) > 1 and None not in digests:
        short = sorted(d[:12] for d in digests)
        raise ComparisonError(f"cannot compare: the runs were tested on {len(digests)} different test sets "
                              f"(digests {', '.join(short)}); select runs of one data split (same data and data.split_seed)")
    groups = [Group(label, rs, [r.data.metrics[metric] for r in rs]) for label, rs in grouped.items()]
    groups.sort(key=lambda g: -g.mean if higher_is_better else g.mean)
    board = Leaderboard(metric, list(by), groups, notes=[fraction_note] if fraction_note else [])
    best = groups[0]
    by_fold = {g.label: fold_means(g.runs, metric) for g in groups}
    if all(by_fold.values()) and len({tuple(sorted(f)) for f in by_fold.values()}) == 1 and len(by_fold[best.label]) >= 2:
        board.across = "folds"
        folds = sorted(by_fold[best.label])
        for g in groups[1:]:
            g.p_seeds = stats.paired_t_test([by_fold[best.label][f] for f in folds], [by_fold[g.label][f] for f in folds])
    else:
        if any(by_fold.values()):
            board.notes.append("the groups were not run on the same cross-validation folds: Welch's test, unpaired")
        for g in groups[1:]:
            g.p_seeds = stats.welch_t_test(best.scores, g.scores)
    if None in digests:
        board.notes.append("some runs have no test digest (logged by an older seqlab): no paired test")
    elif metric not in SPAN_METRICS:
        board.notes.append(f"the paired test scores span F1 ({', '.join(SPAN_METRICS)}), not {metric}: no paired test")
    else:
        counts = {g.label: _mean_counts(client, g.runs) for g in groups}
        if any(c is None for c in counts.values()):
            board.notes.append(f"some runs have no {PREDICTIONS}: no paired test")
        else:
            for g in groups[1:]:
                g.p_paired = stats.approximate_randomization(counts[best.label], counts[g.label], resamples, seed)
            n_sentences = len(counts[best.label])
            board.paired_note = (f"{stats.RANDOMIZATION} ({n_sentences} sentences, {resamples} shuffles) on each "
                                 f"group's mean per-sentence entity counts, against the best group, {best.label}.")
    return board


PER_TYPE_PREFIX = "test_f1_"  # seqlab.tracking.log_test_scores: one F1 per entity type


def per_type(client, runs: list, by: list[str]) -> str:
    """Markdown: for each entity type every run scored (`test_f1_<TYPE>`), each group's n, mean and std, and
    its p against the type's best group (as `build` tests: Welch across seeds, or paired across folds)."""
    types = sorted(set.intersection(*(set(r.data.metrics) for r in runs)) if runs else set())
    types = [m for m in types if m.startswith(PER_TYPE_PREFIX)]
    if not types:
        raise ComparisonError(f"the runs have no per-type metrics ({PER_TYPE_PREFIX}<TYPE>) in common")
    lines = [f"| type | {' / '.join(by)} | n | mean F1 | std | p |", "|---|---|---|---|---|---|"]
    for metric in types:
        board = build(client, runs, by, metric)
        for g in board.groups:
            p = "best" if g.p_seeds is None else f"{g.p_seeds:.4f}"
            lines.append(f"| {metric[len(PER_TYPE_PREFIX):]} | {g.label} | {len(g.scores)} | {g.mean:.4f} | {g.std:.4f} | {p} |")
    return "\n".join(lines) + f"\n\np: {board.across_test}, each group against the type's best group.\n"


def fold_means(runs: list, metric: str) -> dict[str, float]:
    """{fold: mean `metric` of the runs on that fold} when every run carries a `fold` tag, else {}."""
    folds = [r.data.tags.get("fold") for r in runs]
    if None in folds:
        return {}
    return {f: float(np.mean([r.data.metrics[metric] for r, g in zip(runs, folds) if g == f])) for f in set(folds)}


def at_largest_fraction(runs: list) -> tuple[list, str]:
    """The runs trained on the largest `data.train_fraction` of the selection, and a note when others were left
    out (a learning curve's smaller fractions are not the configurations being compared)."""
    fractions = {train_fraction(r) for r in runs}
    if len(fractions) < 2:
        return runs, ""
    top = max(fractions)
    kept = [r for r in runs if train_fraction(r) == top]
    return kept, (f"compared at data.train_fraction={top:g} only ({len(kept)} of {len(runs)} runs); "
                  f"the other fractions are in learning_curve.csv")


def _mean_counts(client, runs) -> np.ndarray | None:
    """Mean per-sentence (tp, fp, fn) over the runs [N, 3], from their logged test predictions."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    per_run = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            try:
                path = client.download_artifacts(run.info.run_id, PREDICTIONS, tmp)
            except Exception:  # noqa: BLE001 - a run without predictions: no paired test
                return None
            with open(path, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            per_run.append(stats.sentence_counts([r["gold"] for r in rows], [r["pred"] for r in rows]))
    if len({c.shape for c in per_run}) != 1:
        return None
    return np.mean(per_run, axis=0)


def plot(board: Leaderboard, path: str) -> None:
    """Per-group strip plot of the metric: one dot per run, a bar at the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(board.groups) + 1.5), 4.0))
    rng = np.random.default_rng(0)
    for i, g in enumerate(board.groups):
        x = i + rng.uniform(-0.12, 0.12, len(g.scores))
        ax.scatter(x, g.scores, s=28, alpha=0.8, zorder=3)
        ax.hlines(g.mean, i - 0.3, i + 0.3, color="black", linewidth=2, zorder=4)
        label = "best" if g.p_seeds is None else f"p={g.p_seeds:.3f}"
        ax.annotate(label, (i, max(g.scores)), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(range(len(board.groups)), [g.label.replace(", ", "\n") for g in board.groups], fontsize=8)
    ax.set_ylabel(board.metric)
    ax.set_title(f"{board.metric} by {' / '.join(board.by)}: runs (dots), mean (bar), Welch p vs best", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_and_log(client, board: Leaderboard, run_id: str, out_dir: str | None = None) -> dict[str, str]:
    """Write leaderboard.{csv,md,png} into `out_dir` (or a temporary folder) and log them on `run_id`."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = out_dir or tmp
        os.makedirs(folder, exist_ok=True)
        paths = {"csv": os.path.join(folder, "leaderboard.csv"), "md": os.path.join(folder, "leaderboard.md"),
                 "png": os.path.join(folder, "leaderboard.png")}
        with open(paths["csv"], "w", encoding="utf-8") as f:
            f.write(board.csv())
        with open(paths["md"], "w", encoding="utf-8") as f:
            f.write(board.markdown())
        plot(board, paths["png"])
        for path in paths.values():
            client.log_artifact(run_id, path)
        return paths if out_dir else {}


def select_runs(client, sweep: str | None = None, experiments: list[str] | None = None,
                filter_string: str = "") -> tuple[list, str | None]:
    """Finished runs to compare, and the sweep parent's run id when the selection is one sweep.

    `sweep` is a sweep parent's run id, or its `sweep` tag (the Hydra sweep directory).
    """
    if sweep:
        parent = _find_sweep(client, sweep, experiments)
        clause = f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        runs = client.search_runs([parent.info.experiment_id], " and ".join(filter(None, [clause, filter_string])),
                                  max_results=50000)
        return [r for r in runs if r.info.status == "FINISHED"], parent.info.run_id
    names = experiments or ["seqlab"]
    found = [client.get_experiment_by_name(n) for n in names]
    missing = [n for n, e in zip(names, found) if e is None]
    if missing:
        raise ComparisonError(f"no experiment named {', '.join(missing)} in the tracking store")
    runs = client.search_runs([e.experiment_id for e in found], filter_string, max_results=50000)
    runs = [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("seqlab.sweep") != "parent"
            and "trial_id" not in r.data.tags]
    return runs, None


def _find_sweep(client, sweep: str, experiments: list[str] | None):
    try:
        return client.get_run(sweep)
    except Exception:  # noqa: BLE001 - not a run id: look it up by its sweep tag
        pass
    ids = [e.experiment_id for e in client.search_experiments()] if not experiments else \
        [e.experiment_id for e in (client.get_experiment_by_name(n) for n in experiments) if e]
    found = client.search_runs(ids, f"tags.sweep = '{sweep}' and tags.`seqlab.sweep` = 'parent'") if ids else []
    if not found:
        raise ComparisonError(f"no sweep {sweep!r}: pass a sweep parent's run id or its sweep tag (the sweep directory)")
    return found[0]
