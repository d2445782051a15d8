"""Multirun jobs in parallel processes with Hydra's joblib launcher, each under the sweep's parent run."""

import subprocess
import sys

from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, tiny_overrides
from seqlab.threads import cores


def test_a_joblib_multirun_runs_jobs_in_parallel_processes_under_one_parent(tmp_path):
    args = [sys.executable, "-m", "experiments.run", "-m", "+encoder=cnn", "head=softmax,crf", "seed=1,2",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}/sweep",
            *tiny_overrides(tmp_path, "tracking.log_model=false")]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(jobs) == 4 and all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}
    assert {(r.data.tags["head"], r.data.params["seed"]) for r in jobs} == {(h, s) for h in ("softmax", "crf") for s in "12"}
    pids = {r.data.tags["seqlab.pid"] for r in jobs}
    assert len(pids) == 2 and parents[0].data.tags["seqlab.pid"] not in pids  # two worker processes did the jobs
    assert {r.data.tags["seqlab.threads"] for r in jobs} == {str(max(1, cores() // 2))}  # the cores shared out
    assert "4 job(s)" in proc.stdout
