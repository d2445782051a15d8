"""What the scale-out parts absorb, measured on this machine (docs/scaling.md).

    python scripts/bench_scaling.py run-profile               # what one seqlab run writes to the store
    python scripts/bench_scaling.py store-load                # runs/s that SQLite and PostgreSQL absorb
    python scripts/bench_scaling.py oracle-calls              # keras-tuner oracle calls per trial
    python scripts/bench_scaling.py --smoke                   # oracle-growth and oracle-calls, tiny: does it still run?

run-profile: one real training run (the default data, 5 epochs, CNN-CRF) in this process against an
`mlflow server` on SQLite, counting every REST call the client makes (by endpoint) and the rows it leaves
(params, tags, metric points, artifacts and their bytes).

store-load: N client processes at once, each creating runs shaped like a seqlab run (60 params, 20 tags,
`--epochs` epochs of 4 metrics in one batch each, 30 final metrics, then FINISHED), as fast as it can, for a
bounded number of runs and seconds. Stores: a SQLite file written directly by every client (the default
`sqlite:///mlflow.db`, what the joblib launcher's jobs share), `mlflow server` on that SQLite file, and
`mlflow server` on PostgreSQL 15 (scripts/tracking_server.sh). Prints runs/s, REST calls/s and per-run
latency (median, p95) for each store and client count; errors are counted, never hidden.

oracle-calls: a 4-trial random search in this process (tiny data), counting and timing each call the tuner
makes to its oracle: in a distributed search each is one gRPC call from a worker to the chief.

oracle-growth: how the chief's cost per trial grows with the trials already done, for each keras-tuner oracle
on a seqlab-sized space (6 dimensions), with synthetic scores and no training: the time of create_trial and
end_trial at 10, 100, ... finished trials.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import multiprocessing as mp
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------------------------------------ servers
def sqlite_server(folder: Path):
    """`mlflow server` on a SQLite file in `folder`, on a free loopback port: (uri, process)."""
    from seqlab.testing import free_port, wait_http

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder}/server.db", "--serve-artifacts", "--artifacts-destination",
                             str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    return f"http://127.0.0.1:{port}", proc


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------------------------------ run-profile
def run_profile(args) -> None:
    import mlflow.store.artifact.http_artifact_repo as artifact_repo
    import mlflow.utils.rest_utils as rest

    folder = Path(tempfile.mkdtemp(prefix="seqlab-profile-"))
    uri, server = sqlite_server(folder)
    calls: collections.Counter = collections.Counter()
    real = rest.http_request

    def counted(host_creds, endpoint, method, *a, **k):
        if not endpoint.startswith("/api/"):  # a file uploaded through the artifact proxy
            calls[f"{method} <artifact file> (through the proxy)"] += 1
        else:
            calls[f"{method} {endpoint.split('/api/2.0/mlflow/')[-1].split('/api/3.0/mlflow/')[-1]}"] += 1
        return real(host_creds, endpoint, method, *a, **k)

    rest.http_request = artifact_repo.http_request = counted
    os.chdir(folder)
    overrides = ["+encoder=cnn", f"trainer.epochs={args.epochs}", "trainer.patience=100", f"tracking.uri={uri}",
                 "tracking.system_metrics=false", f"hydra.run.dir={folder}/out"]
    started = time.perf_counter()
    sys.argv = ["experiments.run", *overrides]
    try:
        runpy.run_module("experiments.run", run_name="__main__")  # as `python -m experiments.run` runs it
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    seconds = time.perf_counter() - started
    rest.http_request = artifact_repo.http_request = real
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])[0]
    points = sum(len(client.get_metric_history(run.info.run_id, k)) for k in run.data.metrics)
    files = [p for p in (folder / "artifacts").rglob("*") if p.is_file()]
    stop(server)
    total = sum(calls.values())
    print(f"one run: `python -m experiments.run {' '.join(overrides[:-1])}` against mlflow server (SQLite), "
          f"{seconds:.1f} s wall")
    print(f"REST calls: {total} ({total / seconds:.2f}/s over the run)")
    for endpoint, n in calls.most_common():
        print(f"  {n:4d}  {endpoint}")
    print(f"rows: {len(run.data.params)} params, {len(run.data.tags)} tags, {len(run.data.metrics)} metrics "
          f"with {points} points; artifacts: {len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB")


# ------------------------------------------------------------------------------------------------ store-load
PARAMS, TAGS, FINAL_METRICS = 60, 20, 30


def calls_per_run(epochs: int) -> int:
    """What `one_client` sends per run: create, params + tags, one batch per epoch, test metrics, FINISHED."""
    return 1 + 1 + epochs + 1 + 1


def one_client(uri: str, experiment_id: str, runs: int, epochs: int, deadline: float, out) -> None:
    """Create up to `runs` seqlab-shaped runs until `deadline`; put (latencies, errors, first start, last end)
    on `out` (wall-clock times, so that the clients' start-up is not counted)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.get_experiment(experiment_id)  # connected before the clock starts
    latencies, errors, first = [], 0, time.time()
    for i in range(runs):
        if time.time() > deadline:
            break
        t0 = time.perf_counter()
        try:
            run = client.create_run(experiment_id, tags={"seqlab.pid": str(os.getpid())})
            rid = run.info.run_id
            client.log_batch(rid, params=[Param(f"p{j}", str(j)) for j in range(PARAMS)],
                             tags=[RunTag(f"t{j}", "x" * 20) for j in range(TAGS)])
            for e in range(1, epochs + 1):
                now = int(time.time() * 1000)
                client.log_batch(rid, metrics=[Metric(k, 0.5, now, e) for k in
                                               ("loss", "val_entity_f1", "epoch_seconds", "learning_rate")])
            now = int(time.time() * 1000)
            client.log_batch(rid, metrics=[Metric(f"test_m{j}", 0.1, now, 0) for j in range(FINAL_METRICS)])
            client.set_terminated(rid, "FINISHED")
            latencies.append(time.perf_counter() - t0)
        except Exception as ex:  # noqa: BLE001 - a failed write is what this counts
            errors += 1
            print(f"client {os.getpid()}: {type(ex).__name__}: {str(ex)[:200]}", file=sys.stderr)
    out.put((latencies, errors, first, time.time()))


def load(uri: str, clients: int, runs: int, epochs: int, seconds: float) -> dict:
    from seqlab import tracking

    experiment_id = tracking.use_experiment(uri, f"load-{clients}-{time.time_ns()}")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    deadline = time.time() + seconds + 10  # + the clients' start-up
    procs = [ctx.Process(target=one_client, args=(uri, experiment_id, runs, epochs, deadline, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    wall = max(r[3] for r in results) - min(r[2] for r in results)  # first run started to last run ended
    latencies = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    from mlflow.tracking import MlflowClient

    stored = MlflowClient(uri).search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=50000)
    return {"clients": clients, "runs": len(latencies), "stored": len(stored), "errors": errors, "wall": wall,
            "runs_per_s": len(latencies) / wall, "calls_per_s": len(latencies) * calls_per_run(epochs) / wall,
            "median_s": statistics.median(latencies) if latencies else float("nan"),
            "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")}


def store_load(args) -> None:
    from seqlab.testing import postgres_missing, tracking_server

    folder = Path(tempfile.mkdtemp(prefix="seqlab-load-"))
    rows = []

    def measure(name: str, uri: str) -> None:
        for clients in args.clients:
            r = load(uri, clients, args.runs, args.epochs, args.seconds)
            rows.append({"store": name, **r})
            print(json.dumps(rows[-1]), flush=True)

    measure("SQLite file, clients write it directly", f"sqlite:///{folder}/direct.db")
    uri, server = sqlite_server(folder)
    try:
        measure("mlflow server on SQLite", uri)
    finally:
        stop(server)
    why = postgres_missing()
    if why:
        print(f"PostgreSQL skipped: {why}")
    else:
        with tracking_server() as (uri, _):
            measure("mlflow server on PostgreSQL 15", uri)
    print(f"\nruns shaped like seqlab's: {PARAMS} params, {TAGS} tags, {args.epochs} epochs x 4 metrics, "
          f"{FINAL_METRICS} final metrics; {calls_per_run(args.epochs)} REST calls per run; at most {args.runs} runs per "
          f"client and {args.seconds:.0f} s per cell\n")
    print("| store | clients | runs | runs/s | REST calls/s | run latency median | p95 | errors | FINISHED in store |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['store']} | {r['clients']} | {r['runs']} | {r['runs_per_s']:.1f} | {r['calls_per_s']:.0f} | "
              f"{r['median_s'] * 1000:.0f} ms | {r['p95_s'] * 1000:.0f} ms | {r['errors']} | {r['stored']} |")


# ------------------------------------------------------------------------------------------------ oracle-calls
def oracle_calls(args) -> None:
    from seqlab.testing import compose

    folder = Path(tempfile.mkdtemp(prefix="seqlab-oracle-"))
    overrides = ["+encoder=cnn", "+tuner=random", "tuner_space@tuner.space=smoke", f"tuner.max_trials={args.trials}",
                 f"tuner.epochs={args.epochs}", "tuner.patience=100", "data.limit=60", "words.dim=8",
                 "words.char_filters=4", f"tracking.uri=sqlite:///{folder}/mlflow.db", "tracking.log_model=false",
                 "tracking.system_metrics=false"]
    cfg = compose(overrides)
    import keras_tuner as kt

    from seqlab.jobs import search as tuning

    counts: collections.Counter = collections.Counter()
    seconds: collections.Counter = collections.Counter()
    methods = ("create_trial", "update_trial", "end_trial", "get_trial", "get_best_trials", "get_space", "update_space")
    real_make = tuning.make_tuner

    def make_counting(*a, **k):
        tuner = real_make(*a, **k)
        oracle = tuner.oracle
        for name in methods:
            method = getattr(oracle, name)

            def wrapped(*ma, _m=method, _n=name, **mk):
                t0 = time.perf_counter()
                try:
                    return _m(*ma, **mk)
                finally:
                    counts[_n] += 1
                    seconds[_n] += time.perf_counter() - t0
            setattr(oracle, name, wrapped)
        return tuner

    tuning.make_tuner = make_counting
    assert kt  # the real keras-tuner oracle
    tuning.search(cfg, str(folder / "tuner"), overrides)
    trials = args.trials
    print(f"{trials} trials x {args.epochs} epochs (random search, in-process oracle; a worker sends each call "
          "to the chief over gRPC)\n")
    print("| oracle call | calls | per trial | mean ms (in-process) |")
    print("|---|---|---|---|")
    for name in methods:
        if counts[name]:
            print(f"| {name} | {counts[name]} | {counts[name] / trials:.2f} | {1000 * seconds[name] / counts[name]:.2f} |")
    print(f"| all | {sum(counts.values())} | {sum(counts.values()) / trials:.2f} | |")


def oracle_growth(args) -> None:
    import random

    import keras_tuner as kt

    def space():
        hp = kt.HyperParameters()
        hp.Int("units", 50, 400, step=50)
        hp.Float("lr", 1e-4, 1e-1, sampling="log")
        hp.Float("dropout", 0.0, 0.6)
        hp.Choice("head", ["softmax", "crf"])
        hp.Choice("encoder", ["bilstm", "bigru", "cnn", "idcnn"])
        hp.Int("char_filters", 10, 100, step=10)
        return hp

    print("| oracle | finished trials | create_trial ms | end_trial ms |")
    print("|---|---|---|---|")
    for name, make in (("random", kt.oracles.RandomSearchOracle), ("bayesian", kt.oracles.BayesianOptimizationOracle)):
        folder = tempfile.mkdtemp(prefix="seqlab-oracle-")
        oracle = make(objective=kt.Objective("val_entity_f1", "max"), max_trials=max(args.at) + 10, seed=1)
        oracle._set_project_dir(folder, "growth")
        oracle.hyperparameters = space()
        rng, done = random.Random(0), 0
        for target in args.at:
            create, end = [], []
            while done < target + 5:
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):  # its "Running Trial" display
                    trial = oracle.create_trial("tuner0")
                create.append(time.perf_counter() - t0)
                oracle.update_trial(trial.trial_id, {"val_entity_f1": rng.random()})
                t0 = time.perf_counter()
                trial.status = "COMPLETED"
                with contextlib.redirect_stdout(io.StringIO()):  # its per-trial summary
                    oracle.end_trial(trial)
                end.append(time.perf_counter() - t0)
                done += 1
            print(f"| {name} | {target} | {1000 * statistics.median(create[-5:]):.1f} | "
                  f"{1000 * statistics.median(end[-5:]):.1f} |", flush=True)


def main() -> None:
    if sys.argv[1:] == ["--smoke"]:  # does it still run? The two measurements that need no server
        oracle_growth(argparse.Namespace(at=[3]))
        oracle_calls(argparse.Namespace(trials=1, epochs=1))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("run-profile")
    p.add_argument("--epochs", type=int, default=5)
    p.set_defaults(fn=run_profile)
    p = sub.add_parser("store-load")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--runs", type=int, default=40, help="at most this many runs per client")
    p.add_argument("--seconds", type=float, default=60, help="and at most this long per cell")
    p.add_argument("--epochs", type=int, default=10)
    p.set_defaults(fn=store_load)
    p = sub.add_parser("oracle-calls")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.set_defaults(fn=oracle_calls)
    p = sub.add_parser("oracle-growth")
    p.add_argument("--at", type=int, nargs="+", default=[10, 100, 300])
    p.set_defaults(fn=oracle_growth)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
