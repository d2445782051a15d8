"""Peak memory and time of the main command, side by side under a few settings.

    python scripts/bench_memory.py                                  # the README's main command, 2 rounds
    python scripts/bench_memory.py --rounds 3 --variant "trainer.jit_compile=true"
    python scripts/bench_memory.py --python /path/to/fresh/venv/bin/python
    python scripts/bench_memory.py --rounds 1 --variant "trainer.jit_compile=auto" \
        --variant "+encoder=transformer words.dim=0 words.casing=true optimizer.name=adamw optimizer.lr=1e-3 optimizer.encoder_lr=5e-5"

Each variant is `python -m experiments.run +encoder=bilstm <overrides>` (or its own `+encoder=`; the README's first
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

RSS counts the pages of shared libraries that the kernel may drop at any time. What a run really
needs: `--memory-limit MIB` runs each command inside a memory cgroup of that size (cgroup v2's
memory.max or v1's memory.limit_in_bytes; needs root), where the kernel reclaims what it can
before it kills; a killed run is reported as such, with the times it hit the limit:

    sudo python scripts/bench_memory.py --memory-limit 768 --rounds 1 --variant "trainer.jit_compile=auto"
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seqlab.runtime.memory import resident_mib

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ["trainer.jit_compile=auto", "trainer.jit_compile=false"]


class MemoryCgroup:
    """A memory cgroup limited to `mib` MiB for one run: cgroup v2 (memory.max) or v1 (memory.limit_in_bytes)."""

    def __init__(self, mib: int):
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/memory")
        self.v2, self.path = v2, base / f"seqlab-bench-memory-{os.getpid()}-{time.monotonic_ns()}"
        try:
            self.path.mkdir()
            (self.path / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(mib * 2**20))
        except OSError as e:
            self.close()
            raise SystemExit(f"error: cannot make a memory cgroup under {base} ({e.strerror}): "
                             "--memory-limit needs root and a memory controller") from None

    def enter(self) -> None:
        """In the child, before it starts: move it into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def limit_hits(self) -> int:
        if self.v2:
            events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
            return int(events.get("max", 0))
        return int((self.path / "memory.failcnt").read_text())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def one_run(python: str, overrides: list[str], env: dict, memory_limit: int | None = None) -> dict:
    """Run the main command once; its metrics from its own MLflow store, and its RSS timeline.
    Under `memory_limit` (MiB) it runs in a memory cgroup of that size; a run killed there has killed=True."""
    from seqlab import tracking

    with tempfile.TemporaryDirectory(prefix="seqlab-mem-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        encoder = [] if any(o.startswith("+encoder=") for o in overrides) else ["+encoder=bilstm"]
        args = [python, "-m", "experiments.run", *encoder, *overrides, f"tracking.uri={uri}",
                f"tracking.artifact_location={tmp}/mlruns", f"hydra.run.dir={tmp}/hydra"]
        cgroup = MemoryCgroup(memory_limit) if memory_limit else None
        started, proc = time.perf_counter(), None
        try:
            with open(f"{tmp}/stderr.log", "w+") as errors:  # a file, not a pipe: a full pipe would stall the run
                proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True,
                                        preexec_fn=cgroup.enter if cgroup else None)
                timeline = []
                while proc.poll() is None:
                    rss = resident_mib(proc.pid)
                    if rss is not None:
                        timeline.append((time.perf_counter() - started, rss))
                    time.sleep(0.2)
                wall = time.perf_counter() - started
                errors.seek(0)
                stderr = errors.read()
            hits = cgroup.limit_hits() if cgroup else None
        finally:  # Ctrl-C here leaves neither the run nor its cgroup behind
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            if cgroup:
                cgroup.close()
        if cgroup and proc.returncode == -signal.SIGKILL:
            return {"killed": True, "wall_s": wall, "limit_hits": hits, "timeline": timeline, "log": stderr}
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(overrides)} failed:\n{stderr[-2000:]}")
        client = tracking.client(uri)
        run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
        epochs = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "epoch_seconds"), key=lambda m: m.step)]
        return {"peak_rss_mb": run.data.metrics["peak_rss_mb"], "wall_s": wall, "first_epoch_s": epochs[0],
                "later_epoch_s": statistics.median(epochs[1:]) if len(epochs) > 1 else float("nan"),
                "epochs": len(epochs), "test_f1": run.data.metrics.get("test_entity_f1", float("nan")),
                "timeline": timeline, "log": stderr, "killed": False, "limit_hits": hits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="space-separated overrides, and/or VAR=value "
                        "environment settings prefixed with env:, e.g. 'env:MALLOC_ARENA_MAX=2' (repeatable)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--timeline", action="store_true", help="print each run's RSS every few seconds")
    parser.add_argument("--memory-limit", type=int, metavar="MIB", help="run each command in a memory cgroup this size")
    parser.add_argument("--smoke", action="store_true", help="one round of one tiny variant: does it still run?")
    args = parser.parse_args()
    variants = args.variant or DEFAULT_VARIANTS
    if args.smoke:
        args.rounds, variants = 1, ["data.limit=40 trainer.epochs=1 trainer.jit_compile=false tracking.log_model=false "
                                    "tracking.calibration=false tracking.latency_sentences=0"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {args.python}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}" + (f"; memory cgroup of {args.memory_limit} MiB" if args.memory_limit else "")
          + "\n")
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
            out = one_run(args.python, overrides, env, args.memory_limit)
            hits = f", memory limit hit {out['limit_hits']} times" if args.memory_limit else ""
            if out["killed"]:
                print(f"round {round_ + 1} {variant}: KILLED by the {args.memory_limit} MiB limit after "
                      f"{out['wall_s']:.1f} s{hits}", flush=True)
                continue
            results[variant].append(out)
            print(f"round {round_ + 1} {variant}: peak {out['peak_rss_mb']:.0f} MiB, {out['wall_s']:.1f} s, "
                  f"{out['epochs']} epochs, test F1 {out['test_f1']:.4f}{hits}", flush=True)
            if args.timeline:
                shown = out["timeline"][::15] + out["timeline"][-1:]
                print("   " + "  ".join(f"{t:.0f}s:{r:.0f}" for t, r in shown))
    print("\n| variant | peak_rss_mb | wall (s) | first epoch (s) | later epochs (s) | epochs | test F1 |")
    print("|---|---|---|---|---|---|---|")
    for variant, runs in results.items():
        if not runs:
            print(f"| {variant} | killed | | | | | |")
            continue
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        print(f"| {variant} | {med('peak_rss_mb'):.0f} | {med('wall_s'):.1f} | {med('first_epoch_s'):.1f} | "
              f"{med('later_epoch_s'):.2f} | {med('epochs'):.0f} | {med('test_f1'):.4f} |")


if __name__ == "__main__":
    main()
