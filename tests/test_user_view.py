"""What users see: the debug preset, serving a logged model over HTTP, the progress bar.

The search's `trial k/N` lines and final table are checked in test_tuning.test_random_search_records_parent_and_trials."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import mlflow
from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, free_port, wait_http


def test_debug_fast_preset_runs_a_small_quiet_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "experiments.run", "+encoder=cnn", "+debug=fast", f"tracking.uri={uri}",
                           f"tracking.artifact_location={tmp_path}/mlruns", f"hydra.run.dir={tmp_path}/out"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    params = runs[0].data.params
    assert params["data.limit"] == "300" and params["trainer.epochs"] == "1" and params["tracking.log_model"] == "False"
    assert "model_uri" not in runs[0].data.tags  # no model logged
    assert "[seqlab][DEBUG] - resolved config" in proc.stdout + proc.stderr
    print(f"+debug=fast took {seconds:.1f} s")


def test_mlflow_models_serve_answers_a_curl_payload(tmp_path, tiny_cfg):
    from seqlab.pipeline import train

    result = train(tiny_cfg("+encoder=cnn", "words.chars=none"))
    model_uri = MlflowClient(tiny_cfg().tracking.uri).get_run(result["run_id"]).data.tags["model_uri"]
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tiny_cfg().tracking.uri,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}  # uvicorn
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=server)
        payload = {"inputs": [["EU", "rejects", "German", "call"], ["Paris"], []]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert [len(tags) for tags in answer["predictions"]] == [4, 1, 0]
        in_process = mlflow.pyfunc.load_model(model_uri).predict(payload["inputs"])
        assert answer["predictions"] == in_process
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_progress_bar_by_default_only_for_long_epochs(tiny_cfg, capfd):
    from seqlab.pipeline import train
    from seqlab.training import show_progress

    assert show_progress(None, 501) and not show_progress(None, 500)
    assert show_progress(True, 3) and not show_progress(False, 10_000)
    train(tiny_cfg("+encoder=cnn", "trainer.progress=true", "words.chars=none", "tracking.log_model=false",
                   "tracking.system_metrics=false"))
    out = capfd.readouterr().out
    assert "3/3" in out and "loss:" in out  # Keras' bar: 80 sentences / 32 per batch = 3 batches
