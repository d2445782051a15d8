"""F1 against training time for one run: a table (markdown) and a figure, e.g. "time to 85 F1".

    python scripts/plot_f1_over_time.py --uri sqlite:///mlflow.db --run-id <id> --out docs/figures/f1_over_time.png

Reads the run's per-epoch metrics: `epoch_seconds` (cumulated: training plus dev scoring),
the dev metric (`val_entity_f1`, ...) and, when the run had trainer.test_each_epoch=true,
`test_<metric>_by_epoch`. Prints one row per epoch and the first epoch whose dev and test
F1 reach each of --thresholds.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--thresholds", default="0.80,0.85,0.86")
    args = parser.parse_args()
    client = MlflowClient(args.uri)
    run = client.get_run(args.run_id)
    monitor = next(k for k in run.data.metrics if k.startswith("best_val_"))[len("best_"):]
    metric = monitor[len("val_"):]
    seconds, dev = history(client, args.run_id, "epoch_seconds"), history(client, args.run_id, monitor)
    test = history(client, args.run_id, f"test_{metric}_by_epoch")
    epochs = sorted(seconds)
    elapsed, total = {}, 0.0
    for e in epochs:
        total += seconds[e]
        elapsed[e] = total / 60
    print(f"| epoch | minutes (cumulated) | dev {metric} | test {metric} |")
    print("|---|---|---|---|")
    for e in epochs:
        print(f"| {e} | {elapsed[e]:.1f} | {dev.get(e, float('nan')):.4f} | {test.get(e, float('nan')):.4f} |")
    print()
    for t in (float(x) for x in args.thresholds.split(",")):
        for name, series in (("dev", dev), ("test", test)):
            hit = next((e for e in epochs if series.get(e, -1) >= t), None)
            when = f"epoch {hit}, {elapsed[hit]:.1f} min" if hit else "not reached"
            print(f"- {name} {metric} >= {t:.2f}: {when}")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([elapsed[e] for e in epochs], [dev.get(e) for e in epochs], marker="o", label=f"dev {metric}")
    if test:
        ax.plot([elapsed[e] for e in epochs], [test.get(e) for e in epochs], marker="s", label=f"test {metric}")
    for t in (float(x) for x in args.thresholds.split(",")):
        ax.axhline(t, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("training minutes (dev scoring included)")
    ax.set_ylabel(metric)
    ax.set_title(f"{run.data.tags.get('mlflow.runName', args.run_id)}: {metric} against time")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
