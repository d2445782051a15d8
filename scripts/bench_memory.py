"""Peak memory and time of the main command, side by side under a few settings.

    python scripts/bench_memory.py                                  # the README's main command, 2 rounds
    python scripts/bench_memory.py --rounds 3 --variant "trainer.jit_compile=true"
    python scripts/bench_memory.py --python /path/to/fresh/venv/bin/python

Each variant is `python -m experiments.run +encoder=bilstm <overrides>` (the README's first
command on the embedded WNUT-16 data) in its own process and its own temporary MLflow store,
the variants interleaved round by round so that they share the machine's state. The table
gives, per variant, the medians over rounds of:

    peak_rss_mb      the run's own peak resident memory (MiB, logged by seqlab on every run)
    wall_s           the whole command, imports and MLflow logging included
    first_epoch_s    the first epoch (tracing and compiling included)
    later_epoch_s    the median of the other epochs
    epochs, test F1  how the run ended (early stopping may end variants at different epochs)

Sampling /proc every 0.2 s also gives where the peak happened (`--timeline` prints it):
after the imports, after the first epoch, at the end of training, or while the model is logged.
`--python` runs another interpreter, e.g. a fresh virtual environment with only `pip install -e .`
(what a new user has: no JAX, IPython or test extras, which Keras would import and which add
~80 MiB here).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ["trainer.jit_compile=auto", "trainer.jit_compile=false"]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def one_run(python: str, overrides: list[str], env: dict) -> dict:
    """Run the main command once; its metrics from its own MLflow store, and its RSS timeline."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="seqlab-mem-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        args = [python, "-m", "experiments.run", "+encoder=bilstm", *overrides, f"tracking.uri={uri}",
                f"tracking.artifact_location={tmp}/mlruns", f"hydra.run.dir={tmp}/hydra"]
        started = time.perf_counter()
        with open(f"{tmp}/stderr.log", "w+") as errors:  # a file, not a pipe: a full pipe would stall the run
            proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
            timeline = []
            while proc.poll() is None:
                rss = rss_mib(proc.pid)
                if rss is not None:
                    timeline.append((time.perf_counter() - started, rss))
                time.sleep(0.2)
            wall = time.perf_counter() - started
            errors.seek(0)
            stderr = errors.read()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(overrides)} failed:\n{stderr[-2000:]}")
        client = MlflowClient(uri)
        run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
        epochs = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "epoch_seconds"), key=lambda m: m.step)]
        return {"peak_rss_mb": run.data.metrics["peak_rss_mb"], "wall_s": wall, "first_epoch_s": epochs[0],
                "later_epoch_s": statistics.median(epochs[1:]) if len(epochs) > 1 else float("nan"),
                "epochs": len(epochs), "test_f1": run.data.metrics.get("test_entity_f1", float("nan")),
                "timeline": timeline, "log": stderr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="space-separated overrides, and/or VAR=value "
                        "environment settings prefixed with env:, e.g. 'env:MALLOC_ARENA_MAX=2' (repeatable)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--timeline", action="store_true", help="print each run's RSS every few seconds")
    args = parser.parse_args()
    variants = args.variant or DEFAULT_VARIANTS
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {args.python}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            overrides = []
            for word in variant.split():
                if word.startswith("env:"):
                    key, value = word[4:].split("=", 1)
                    env[key] = value
                else:
                    overrides.append(word)
            out = one_run(args.python, overrides, env)
            results[variant].append(out)
            print(f"round {round_ + 1} {variant}: peak {out['peak_rss_mb']:.0f} MiB, {out['wall_s']:.1f} s, "
                  f"{out['epochs']} epochs, test F1 {out['test_f1']:.4f}", flush=True)
            if args.timeline:
                shown = out["timeline"][::15] + out["timeline"][-1:]
                print("   " + "  ".join(f"{t:.0f}s:{r:.0f}" for t, r in shown))
    print("\n| variant | peak_rss_mb | wall (s) | first epoch (s) | later epochs (s) | epochs | test F1 |")
    print("|---|---|---|---|---|---|---|")
    for variant, runs in results.items():
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        print(f"| {variant} | {med('peak_rss_mb'):.0f} | {med('wall_s'):.1f} | {med('first_epoch_s'):.1f} | "
              f"{med('later_epoch_s'):.2f} | {med('epochs'):.0f} | {med('test_f1'):.4f} |")


if __name__ == "__main__":
    main()
