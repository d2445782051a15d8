"""A sweep runs every job and ends recorded, whatever one job does, with Hydra's basic and joblib launchers
(the Ray launcher: tests/test_server.py); Ctrl-C and SIGTERM stop a parallel multirun whole."""

import signal
import subprocess
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import run_cli, runs_of, start_module, tiny_overrides

pytestmark = pytest.mark.slow

# Three jobs, three ends: a config refused before the job's run begins (a non-finite learning rate), a loss that
# becomes NaN in the first epoch (SGD at 1e38 without clipping), and a healthy job.
FAILING_SWEEP = ["+encoder=cnn", "optimizer.name=sgd", "optimizer.clipnorm=null", "optimizer.lr=inf,1e38,0.002"]


def sweep(tmp_path, *args, launcher=(), timeout=600):
    overrides = tiny_overrides(tmp_path, "data.limit=40", "tracking.log_model=false", "words.chars=none",
                               "tracking.system_metrics=false")
    return run_cli("-m", *args, *overrides, *launcher, f"hydra.sweep.dir={tmp_path}/multirun", timeout=timeout)


def check_failing_sweep(tmp_path, proc):
    """Every job ran and ended recorded; the failures are FAILED with their one-line reason; the parent FAILED."""
    assert proc.returncode == 2, proc.stderr[-3000:]  # jobs failed, each from a user error (a config value, a NaN loss)
    runs = runs_of(f"sqlite:///{tmp_path}/mlflow.db")
    parent = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    jobs = {r.data.tags["hydra.overrides"].split("optimizer.lr=")[1].split()[0]: r for r in runs if r not in parent}
    assert len(parent) == 1 and sorted(jobs) == ["0.002", "1e+38", "inf"]
    assert parent[0].info.status == "FAILED" and parent[0].data.tags["jobs_failed"] == "2"
    assert jobs["inf"].info.status == "FAILED" and "optimizer.lr=inf is invalid" in jobs["inf"].data.tags["error"]
    assert jobs["1e+38"].info.status == "FAILED" and "NaN" in jobs["1e+38"].data.tags["error"]
    assert jobs["0.002"].info.status == "FINISHED" and "test_entity_f1" in jobs["0.002"].data.metrics  # it ran
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs.values()} == {parent[0].info.run_id}
    table = proc.stdout[proc.stdout.index("| # | run |"):]
    assert table.count("| FAILED |") == 2 and table.count("| FINISHED |") == 1  # the job table shows each status
    assert "error: 2 of 3 job(s) failed" in proc.stderr and "Traceback" not in proc.stderr


def test_a_failing_job_never_stops_the_sweep_with_the_basic_launcher(tmp_path):
    check_failing_sweep(tmp_path, sweep(tmp_path, *FAILING_SWEEP))


def test_a_failing_job_never_stops_the_sweep_nor_a_sibling_with_the_joblib_launcher(tmp_path):
    proc = sweep(tmp_path, *FAILING_SWEEP, launcher=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    check_failing_sweep(tmp_path, proc)
    assert not [r for r in runs_of(f"sqlite:///{tmp_path}/mlflow.db") if r.info.status == "RUNNING"]


def test_a_multirun_whose_every_job_is_refused_exits_2_with_each_job_recorded(tmp_path):
    proc = sweep(tmp_path, "head=softmax,crf")  # no +encoder=
    assert proc.returncode == 2 and proc.stderr.count("error: no encoder chosen") == 2, proc.stderr[-2000:]
    runs = runs_of(f"sqlite:///{tmp_path}/mlflow.db")
    statuses = sorted((r.data.tags.get("seqlab.sweep", "job"), r.info.status) for r in runs)
    assert statuses == [("job", "FAILED"), ("job", "FAILED"), ("parent", "FAILED")]  # never left RUNNING


def test_sigterm_to_a_parallel_multirun_ends_every_worker_and_every_run_killed(tmp_path):
    overrides = tiny_overrides(tmp_path, "trainer.epochs=300", "trainer.patience=300", "tracking.log_model=false",
                               "words.chars=none", "tracking.system_metrics=false")
    proc = start_module("experiments.run", "-m", "+encoder=cnn", "seed=1,2", "hydra/launcher=joblib",
                        "hydra.launcher.n_jobs=2", *overrides, f"hydra.sweep.dir={tmp_path}/multirun",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    deadline, training = time.monotonic() + 300, []
    while time.monotonic() < deadline and proc.poll() is None:
        if not (tmp_path / "multirun" / "mlflow_sweep.json").exists():  # the store is created with the parent run
            time.sleep(0.5)
            continue
        jobs = [r for r in runs_of(uri) if r.data.tags.get("seqlab.sweep") != "parent"]
        training = [r for r in jobs if MlflowClient(uri).get_metric_history(r.info.run_id, "val_entity_f1")]
        if len(training) == 2:
            break
        time.sleep(0.5)
    assert len(training) == 2, proc.communicate(timeout=60)[1][-3000:]
    family = psutil.Process(proc.pid).children(recursive=True)
    assert len(family) >= 2  # the joblib workers
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted (SIGTERM)" in err, err[-3000:]
    assert time.monotonic() - started < 60
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], [p.pid for p in alive]  # no worker left behind
    runs = runs_of(uri)
    assert {r.info.status for r in runs} == {"KILLED"}, [(r.info.run_name, r.info.status) for r in runs]
    assert len(runs) == 3 and "Traceback" not in err, [(r.info.run_name, r.data.tags) for r in runs]
