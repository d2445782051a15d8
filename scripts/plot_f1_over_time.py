"""F1 against training time for one run: a table (markdown) and a figure, e.g. "time to 85 F1".

    python scripts/plot_f1_over_time.py --uri sqlite:///mlflow.db --run-id <id> --out docs/figures/f1_over_time.png

`--smoke` makes a throw-away store with one run of three epochs and plots it. Reads the run's per-epoch metrics: `epoch_seconds` (cumulated: training plus dev scoring),
the dev metric (`val_entity_f1`, ...) and, when the run had trainer.test_each_epoch=true,
`test_<metric>_by_epoch`. Prints one row per epoch and the first epoch whose dev and test
F1 reach each of --thresholds.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqlab import tracking  # noqa: E402


def history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def smoke_run() -> tuple[str, str, str]:
    """(uri, run id, figure path) of a made-up run with three epochs in a throw-away store."""
    folder = tempfile.mkdtemp(prefix="seqlab-plot-")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = tracking.client(uri)
    run = client.create_run(tracking.use_experiment(uri, "smoke", f"{folder}/mlruns"))
    for epoch, (dev, test) in enumerate([(0.70, 0.66), (0.84, 0.81), (0.87, 0.86)], start=1):
        for key, value in (("epoch_seconds", 30.0), ("val_entity_f1", dev), ("test_entity_f1_by_epoch", test)):
            client.log_metric(run.info.run_id, key, value, step=epoch)
    client.log_metric(run.info.run_id, "best_val_entity_f1", 0.87)
    return uri, run.info.run_id, os.path.join(folder, "f1_over_time.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uri")
    parser.add_argument("--run-id")
    parser.add_argument("--out")
    parser.add_argument("--thresholds", default="0.80,0.85,0.86")
    parser.add_argument("--smoke", action="store_true", help="plot a made-up run: does it still run?")
    args = parser.parse_args()
    if args.smoke:
        args.uri, args.run_id, args.out = smoke_run()
    elif not (args.uri and args.run_id and args.out):
        parser.error("--uri, --run-id and --out are required (or --smoke)")
    client = tracking.client(args.uri)
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
