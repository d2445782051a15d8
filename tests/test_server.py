"""Scale-out against a real tracking server: PostgreSQL 15 + `mlflow server --serve-artifacts`, started by
scripts/tracking_server.sh. Clients get only `tracking.uri=http://...`: they run in empty folders, share no
disk with the server or each other, and the tests count what landed (runs, metrics, artifacts).

All of them share one server and one pytest-xdist worker (`xdist_group`); they skip, saying why, only where
PostgreSQL cannot run (the `postgres_tracking` fixture in conftest.py).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import mlflow
import psutil
import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, free_port, run_cli, runs_of, start_module
from seqlab.runtime.threads import cores

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.xdist_group("tracking_server")]

TINY = ["data.limit=80", "words.dim=16", "words.char_filters=8", "tracking.system_metrics=false",
        "trainer.jit_compile=false"]  # no XLA compile per process: these tests are about the server
RUN_ARTIFACTS = {"config.yaml", "classification_report.txt", "transition_matrix.png", "f1_by_type.png",
                 "model_summary.txt", "test_predictions.jsonl", "data_stats.json"}


def seqlab_run(folder: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m experiments.run ARGS` started in its own empty folder, as on another machine."""
    folder.mkdir(parents=True, exist_ok=True)
    return start_module("experiments.run", *args, f"hydra.run.dir={folder}/out", cwd=folder, env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[str]:
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        outputs.append(out)
    return outputs


def sweep_of(uri: str, experiment: str, jobs: int) -> tuple:
    """(parent, jobs) of the one multirun in `experiment`, checked: the parent and its `jobs` jobs FINISHED,
    every job nested under it and scored."""
    runs = runs_of(uri, experiment)
    parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == jobs and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all("test_entity_f1" in r.data.metrics for r in children)
    return parents[0], children


def assert_nothing_local(folders: list[Path]) -> None:
    """The clients wrote no store and no artifacts of their own: all of it went to the server."""
    for folder in folders:
        assert not list(folder.rglob("mlflow.db")) and not list(folder.rglob("mlruns")), folder


def test_runs_and_a_parallel_multirun_at_once_lose_nothing_and_the_model_loads_through_the_artifact_proxy(
        postgres_tracking, tmp_path, monkeypatch):
    """Two runs, each from its own empty folder as on another machine, and a joblib multirun of two jobs, all at
    once: five processes writing to one server. Every epoch of every run lands; the multirun's jobs land under one
    parent, done by two worker processes sharing out the cores."""
    uri, server_folder = postgres_tracking
    experiment, sweep_experiment = f"concurrent-{uuid.uuid4().hex[:8]}", f"joblib-{uuid.uuid4().hex[:8]}"
    folders = [tmp_path / f"client{i}" for i in range(2)]
    procs = [seqlab_run(f, "+encoder=cnn", "trainer.epochs=2", f"seed={i}", f"tracking.uri={uri}",
                        f"tracking.experiment={experiment}", *TINY) for i, f in enumerate(folders)]
    sweep_folder = tmp_path / "sweep_client"
    procs.append(seqlab_run(sweep_folder, "-m", "+encoder=cnn", "head=softmax,crf", "hydra/launcher=joblib",
                            "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_folder}/sweep", "trainer.epochs=1",
                            f"tracking.uri={uri}", f"tracking.experiment={sweep_experiment}", "tracking.log_model=false",
                            *TINY))
    outputs = finish(procs)

    runs = runs_of(uri, experiment)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    client = MlflowClient(uri)
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val_entity_f1")
        assert [m.step for m in history] == [1, 2]  # every epoch of every run
        assert {"test_entity_f1", "test_entity_precision", "test_entity_recall", "peak_rss_mb"} <= set(run.data.metrics)
        assert RUN_ARTIFACTS <= {a.path for a in client.list_artifacts(run.info.run_id)}
        assert [i.dataset.name for i in run.inputs.dataset_inputs].count("wnut16-test") == 1
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # through the proxy, not a client path
    # the metric rows in PostgreSQL: the same count for every run (nothing dropped under concurrency)
    assert len({len(run.data.metrics) for run in runs}) == 1
    stored = list((server_folder / "artifacts" / runs[0].info.experiment_id).rglob("tagger.keras"))
    assert len(stored) == 2  # one model per run, in the server's artifact folder

    parent, jobs = sweep_of(uri, sweep_experiment, jobs=2)
    assert sorted(r.data.tags["head"] for r in jobs) == ["crf", "softmax"]
    pids = {r.data.tags["seqlab.pid"] for r in jobs}
    assert len(pids) == 2 and parent.data.tags["seqlab.pid"] not in pids  # two worker processes did the jobs
    assert {r.data.tags["seqlab.threads"] for r in jobs} == {str(max(1, cores() // 2))}  # the cores shared out
    assert "sweep_summary.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "2 job(s)" in outputs[-1]
    assert_nothing_local([*folders, sweep_folder])

    # The pyfunc model, downloaded through the server's artifact proxy into a fresh folder, tags raw tokens.
    monkeypatch.chdir(tmp_path)  # a fresh folder, as on another machine
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(runs[0].data.tags["model_uri"], dst_path=str(tmp_path / "download"))
    finally:
        mlflow.set_tracking_uri(before)  # later tests in this worker must not talk to this server
    tags = model.predict([["@paul", "is", "in", "London", "tonight"], ["Paris"], []])
    assert [len(t) for t in tags] == [5, 1, 0]
    labels = set(model.unwrap_python_model().tagger.task.labels)
    assert all(t in labels for seq in tags for t in seq)


def test_a_distributed_search_needs_no_shared_directory(postgres_tracking, tmp_path):
    """A chief and two workers, each in its own folder with its own tuner.directory: the workers find the
    parent run in MLflow, and the chief evaluates the best trial from the checkpoint its worker logged."""
    uri, _ = postgres_tracking
    experiment = f"search-{uuid.uuid4().hex[:8]}"
    oracle_port = free_port()
    common = ["+encoder=bilstm", "+tuner=random", "tuner_space@tuner.space=smoke", "tuner.max_trials=3",
              "tuner.epochs=1", "tuner.patience=2", "data.limit=50", "words.dim=8", "words.char_filters=4",
              f"tracking.uri={uri}", f"tracking.experiment={experiment}", "tracking.system_metrics=false"]
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(oracle_port)}
    folders = {role: tmp_path / role for role in ("chief", "tuner0", "tuner1")}
    procs = []
    for role, folder in folders.items():  # workers may start before the chief: they wait for its oracle
        procs.append(seqlab_run(folder, *common, f"tuner.directory={folder}/tuner",
                                env={**env, "KERASTUNER_TUNER_ID": role}))
    outputs = finish(procs)

    runs = runs_of(uri, experiment)
    parents = [r for r in runs if "trial_id" not in r.data.tags]
    trials = [r for r in runs if "trial_id" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["seqlab.oracle"] == f"127.0.0.1:{oracle_port}"
    assert "test_entity_f1" in parent.data.metrics and parent.data.tags["model_uri"]
    ids = [t.data.tags["trial_id"] for t in trials]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 3  # every trial exactly once
    assert all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert {t.data.tags["tuner_id"] for t in trials} <= {"tuner0", "tuner1"}
    client = MlflowClient(uri)
    for t in trials:  # each trial's best weights went to the server, for the chief
        logged = {a.path for a in client.list_artifacts(t.info.run_id, "tuner_checkpoint")}
        assert "tuner_checkpoint/checkpoint.weights.h5" in logged
    best = parent.data.tags["best_trial_id"]
    assert (folders["chief"] / "tuner" / "bilstm-random" / f"trial_{best}" / "checkpoint.weights.h5").exists()  # fetched
    for role in ("tuner0", "tuner1"):  # no worker wrote into the chief's folder, nor read from another's
        assert not (folders[role] / "tuner" / "bilstm-random" / "mlflow_parent_run_id").exists()
    assert_nothing_local(list(folders.values()))
    assert "trials completed" in outputs[0]


def test_the_ray_launcher_sends_multirun_jobs_to_a_running_ray_cluster(postgres_tracking, tmp_path):
    """`ray start --head` on loopback, as on a cluster's head node; the multirun joins it with
    hydra/launcher=ray_cluster and its jobs report to the tracking server."""
    uri, _ = postgres_tracking
    experiment = f"ray-{uuid.uuid4().hex[:8]}"
    ray_cli = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    ray_dir = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 characters
    port = free_port()
    started = subprocess.run([*ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--object-store-memory=100000000",  # small: CI containers have a small /dev/shm
                              "--disable-usage-stats", f"--temp-dir={ray_dir}", f"--ray-client-server-port={free_port()}"],
                             capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        folder = tmp_path / "client"
        folder.mkdir()
        proc = run_cli("-m", "+encoder=cnn", "encoder.filters=0,8", "hydra/launcher=ray_cluster",
                       f"hydra.sweep.dir={folder}/sweep", "trainer.epochs=1", f"tracking.uri={uri}",
                       f"tracking.experiment={experiment}", "tracking.log_model=false", *TINY, cwd=folder,
                       env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}, timeout=600)
        assert proc.returncode == 2, proc.stderr[-3000:]  # one job's config is refused (encoder.filters=0): a user error
        assert "Connected to Ray cluster" in proc.stderr + proc.stdout  # joined the running cluster, started none
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(ray_dir, ignore_errors=True)
    runs = runs_of(uri, experiment)
    (parent,) = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    jobs = {r.data.tags["hydra.overrides"].split("encoder.filters=")[1].split()[0]: r for r in runs if r is not parent}
    assert parent.info.status == "FAILED" and parent.data.tags["jobs_failed"] == "1"
    assert jobs["0"].info.status == "FAILED" and "encoder.filters=0 is invalid" in jobs["0"].data.tags["error"]
    assert jobs["8"].info.status == "FINISHED" and "test_entity_f1" in jobs["8"].data.metrics  # the sibling ran on
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs.values()} == {parent.info.run_id}
    assert parent.data.tags["seqlab.pid"] != jobs["8"].data.tags["seqlab.pid"]  # Ray's worker ran it
    assert jobs["8"].data.tags["seqlab.threads"] == "1"  # the CPU Ray reserved for the job
    assert "2 job(s)" in proc.stdout


def test_the_tracking_server_lets_no_one_else_in(postgres_tracking, tmp_path):
    """PostgreSQL asks every connection for a password; its passwords live in files only their owner reads, and
    never show on a command line or in a log; MLflow's role owns its database and is no superuser."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("trying another user needs root and runuser")
    _, folder = postgres_tracking
    pg_port = (folder / "pg_port").read_text().strip()
    secrets = folder / "secrets"
    assert all(p.stat().st_mode & 0o077 == 0 for p in secrets.iterdir())  # 0600: their owner alone
    assert (folder / "pg").stat().st_mode & 0o077 == 0  # the socket folder is closed to other users
    psql = ["psql", "-w", "-p", pg_port, "-tAc", "SELECT 1"]
    for user, database in (("seqlab_admin", "postgres"), ("mlflow", "mlflow"), ("postgres", "postgres")):
        for host in ("127.0.0.1", str(folder / "pg")):
            proc = subprocess.run(["runuser", "-u", "nobody", "--", *psql, "-h", host, "-U", user, "-d", database],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode != 0 and ("no password supplied" in proc.stderr or "Permission denied" in proc.stderr), \
                (user, host, proc.stdout, proc.stderr)
    wrong = subprocess.run(["runuser", "-u", "nobody", "--", "env", "PGPASSWORD=guess", *psql, "-h", "127.0.0.1", "-U", "mlflow",
                            "-d", "mlflow"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    mlflow_role = subprocess.run(["psql", "-w", "-h", "127.0.0.1", "-p", pg_port, "-U", "mlflow", "-d", "mlflow", "-tAc",
                                  "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user; "
                                  "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mlflow'"],
                                 env={**os.environ, "PGPASSFILE": str(secrets / "mlflow.pgpass")}, capture_output=True,
                                 text=True, timeout=60)
    assert mlflow_role.stdout.split() == ["f|f|f", "mlflow"], mlflow_role.stderr
    passwords = [(secrets / name).read_text().strip() for name in ("admin.pw", "mlflow.pw")]
    for process in psutil.process_iter(["cmdline", "pid"]):
        if process.info["pid"] != os.getpid():
            assert not any(pw in " ".join(process.info["cmdline"] or []) for pw in passwords), process.info
    for log in [folder / "mlflow.log", *folder.rglob("*.log")]:
        assert not any(pw in log.read_text(errors="replace") for pw in passwords), log


def test_a_failed_start_stops_what_it_started_and_never_prints_a_password(postgres_tracking, tmp_path):
    """mlflow server cannot take its port: the script fails in one line and leaves no PostgreSQL running. A
    BACKEND_URI's password is never printed (a wrong one, refused by the suite's running PostgreSQL)."""
    from seqlab.testing import postgres_missing

    why = postgres_missing()
    if why:
        pytest.skip(why)
    folder = tmp_path / "server"
    folder.mkdir()
    folder.chmod(0o755)
    script = str(REPO / "scripts" / "tracking_server.sh")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    env = {**os.environ, "PORT": str(busy.getsockname()[1]), "PG_PORT": str(free_port()), "WORKERS": "1"}
    try:
        started = subprocess.run([script, "start", str(folder)], env=env, capture_output=True, text=True, timeout=180)
    finally:
        busy.close()
    assert started.returncode != 0 and started.stderr.strip().startswith("tracking_server: "), started.stderr
    status = subprocess.run([script, "status", str(folder)], env=env, capture_output=True, text=True, timeout=60)
    assert "mlflow server: not running" in status.stdout and "server is running" not in status.stdout, status.stdout
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(folder) in " ".join(p.info["cmdline"] or [])]
    pg_port = (postgres_tracking[1] / "pg_port").read_text().strip()
    env = {**os.environ, "PORT": str(free_port()),
           "BACKEND_URI": f"postgresql+psycopg2://alice:S3cretPass@127.0.0.1:{pg_port}/db"}  # no such role: refused at once
    failed = subprocess.run([script, "start", str(tmp_path / "other")], env=env, capture_output=True, text=True, timeout=180)
    assert failed.returncode != 0
    shown = failed.stdout + failed.stderr + "".join(p.read_text(errors="replace") for p in (tmp_path / "other").rglob("*.log"))
    assert "S3cretPass" not in shown
    if os.geteuid() == 0:  # PostgreSQL would run as `postgres`, who cannot enter a folder under a closed one
        closed = tmp_path / "closed"
        closed.mkdir(mode=0o700)
        env = {**os.environ, "PORT": str(free_port()), "PG_PORT": str(free_port())}
        refused = subprocess.run([script, "start", str(closed / "server")], env=env, capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
            f"tracking_server: PostgreSQL runs as the postgres user, who cannot enter {closed / 'server'} (it or a "
            "folder above it is closed to other users): choose a folder it can reach, e.g. /srv/seqlab-server"]
        assert not (closed / "server" / "pgdata").exists()


def test_the_server_runs_no_job_runner(postgres_tracking):
    """MLflow 3's GenAI job runner stays off (8 processes, ~1.8 GiB that seqlab never uses): the server is
    `mlflow server` and its uvicorn workers only."""
    _, folder = postgres_tracking
    server = psutil.Process(int((folder / "mlflow.pid").read_text()))
    family = [" ".join(p.cmdline()) for p in [server, *server.children(recursive=True)]]
    assert not [c for c in family if "huey" in c or "jobs._job_runner" in c], family
    assert len(family) <= 5, family  # mlflow server, uvicorn, its 2 workers (WORKERS=2) and their resource tracker
