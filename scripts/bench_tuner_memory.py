"""Resident memory across the trials of one keras-tuner search (is Keras state cleared between trials?).

    python scripts/bench_tuner_memory.py [--trials 20]

Runs a random search on the embedded data (BiLSTM-CRF, 2 epochs per trial, the
`smoke` search space, 400 sentences per split) against a throw-away SQLite
MLflow store, then prints the `rss_mb` / `peak_rss_mb` each trial logged.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seqlab import tracking  # noqa: E402
from seqlab.config import compose  # noqa: E402
from seqlab.jobs.search import search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--limit", type=int, default=400, help="sentences per split")
    parser.add_argument("--smoke", action="store_true", help="2 trials of 1 epoch on 40 sentences: does it still run?")
    args = parser.parse_args()
    epochs, smoke = 2, []
    if args.smoke:  # and without the compiled loss, the calibration pass and the latency figures
        args.trials, args.limit, epochs = 2, 40, 1
        smoke = ["trainer.jit_compile=false", "tracking.calibration=false", "tracking.latency_sentences=0"]
    tmp = tempfile.mkdtemp(prefix="seqlab-rss-")
    overrides = [
        "+encoder=bilstm", "+tuner=random", "tuner_space@tuner.space=smoke", f"tuner.max_trials={args.trials}",
        f"tuner.epochs={epochs}", f"data.limit={args.limit}", "tracking.log_model=false", "tracking.system_metrics=false",
        f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"tracking.artifact_location={tmp}/mlruns",
        f"tuner.directory={tmp}/tuner", *smoke,
    ]
    cfg = compose(overrides)
    parent = search(cfg, f"{tmp}/tuner", overrides)["run_id"]
    trials = tracking.child_runs(cfg.tracking.uri, parent)
    trials.sort(key=lambda r: int(r.data.tags["trial_id"]))
    rss = [r.data.metrics["rss_mb"] for r in trials]
    print(f"| trial | {' | '.join(r.data.tags['trial_id'] for r in trials)} |")
    print(f"|---|{'---|' * len(trials)}")
    print(f"| RSS after trial (MiB) | {' | '.join(f'{x:.0f}' for x in rss)} |")
    print()
    print(f"trials: {len(trials)}; RSS after trial 1: {rss[0]:.0f} MiB, after trial 5: {rss[min(4, len(rss) - 1)]:.0f} MiB, "
          f"after the last: {rss[-1]:.0f} MiB; peak RSS: {max(r.data.metrics['peak_rss_mb'] for r in trials):.0f} MiB")
    if len(rss) >= 10:
        half = len(rss) // 2
        print(f"growth per trial over the second half: {(rss[-1] - rss[half]) / (len(rss) - 1 - half):.1f} MiB")


if __name__ == "__main__":
    main()
