"""What users see: the debug preset, serving a logged model over HTTP, the progress bar.

The search's `trial k/N` lines and final table are checked in test_tuning.test_random_search_records_parent_and_trials."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import psutil
import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import free_port, migrated_uri, run_cli, wait_http

pytestmark = [pytest.mark.slow]


def test_debug_fast_preset_runs_a_small_quiet_experiment(tmp_path):
    uri = migrated_uri(tmp_path / "m.db")
    started = time.monotonic()
    proc = run_cli("+encoder=cnn", "+debug=fast", f"tracking.uri={uri}", f"tracking.artifact_location={tmp_path}/mlruns",
                   f"hydra.run.dir={tmp_path}/out")
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    params = runs[0].data.params
    assert params["data.limit"] == "300" and params["trainer.epochs"] == "1" and params["tracking.log_model"] == "False"
    assert "model_uri" not in runs[0].data.tags  # no model logged
    assert "[seqlab][DEBUG] - resolved config" in proc.stdout + proc.stderr
    print(f"+debug=fast took {seconds:.1f} s after its imports (seqlab.testing.warm)")


def post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, dict | str]:
    """POST to the server's /invocations: (status, the JSON answer, or the text of one that is not JSON)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def server_rss_mib(server) -> float:
    """Resident memory of the serving processes (mlflow's launcher and its uvicorn worker), in MiB."""
    family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    return sum(p.memory_info().rss for p in family) / 2**20


def test_mlflow_models_serve_answers_a_curl_payload_within_limits_and_in_one_line(tmp_path, tiny_cfg):
    from seqlab.jobs.pipeline import train

    result = train(tiny_cfg("+encoder=cnn", "words.chars=none"))
    model_uri = MlflowClient(tiny_cfg().tracking.uri).get_run(result["run_id"]).data.tags["model_uri"]
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tiny_cfg().tracking.uri,
           "SEQLAB_SERVE_MAX_TOKENS": "300", "SEQLAB_SERVE_MAX_SENTENCES": "500", "SEQLAB_SERVE_MAX_BYTES": "2000000",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}  # uvicorn
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=server)
        payload = {"inputs": [["EU", "rejects", "German", "call"], ["Paris"], []]}
        status, answer = post(port, json.dumps(payload).encode())
        assert status == 200 and [len(tags) for tags in answer["predictions"]] == [4, 1, 0]
        in_process = mlflow.pyfunc.load_model(model_uri).predict(payload["inputs"])
        assert answer["predictions"] == in_process
        # Confidence: MLflow's params in the payload, declared in the model's signature.
        status, answer = post(port, json.dumps({**payload, "params": {"scores": True, "nbest": 2}}).encode())
        assert status == 200 and [s["tags"] for s in answer["predictions"]] == in_process
        assert [len(s["scores"]) for s in answer["predictions"]] == [4, 1, 0]
        assert [len(s["nbest"]) for s in answer["predictions"]] == [2, 2, 1]  # an empty sentence has one path
        baseline = server_rss_mib(server)

        # Over a limit: 413 at once, one line naming the limit, no echo of the input, no stack trace.
        refusals = {
            "tokens": json.dumps({"inputs": [["Paris"] * 301]}).encode(),
            "sentences": json.dumps({"inputs": [["Paris"]] * 501}).encode(),
            "bytes": json.dumps({"inputs": [["Paris"] * 200] * 2000}).encode(),
        }
        for limit, body in refusals.items():
            started = time.monotonic()
            status, answer = post(port, body)
            assert status == 413 and time.monotonic() - started < 10, (limit, status, answer)
            assert set(answer) == {"error_code", "message"} and f"SEQLAB_SERVE_MAX_{limit.upper()}" in answer["message"]
            assert "\n" not in answer["message"] and "Paris" not in answer["message"]
        # Bodies MLflow cannot read: 4xx, one line, no stack trace.
        for body, content_type in ((b"a,b\n1,2\n", "text/csv"), (b'{"instances": 3}', "application/json"), (b"{", "application/json")):
            status, answer = post(port, body, content_type)
            assert 400 <= status < 500 and isinstance(answer, dict) and "stack_trace" not in answer, (content_type, answer)
            assert "Traceback" not in answer["message"] and "\n" not in answer["message"]

        # The largest request the limits allow, eight times: memory stays bounded and is not kept request after
        # request (decoding batches hold at most 16,384 padded tokens; freed heap goes back to the system). The
        # RSS after a request swings up by ~30 MiB and back from one request to the next (TensorFlow's allocator;
        # 1,183-1,216 MiB, peaks in any position, 2026-12-02 and CI), so a peak says nothing. A leak raises the floor:
        # the lowest RSS of the last four requests against the first four's, which catches a leak of ~4 MiB or more
        # per request.
        largest = json.dumps({"inputs": [["Paris", "in", "EU"] * 100] * 500}).encode()
        after = []
        for _ in range(8):
            status, answer = post(port, largest)
            assert status == 200 and len(answer["predictions"]) == 500
            after.append(server_rss_mib(server))
        assert max(after) - baseline < 100 and min(after[4:]) - min(after[:4]) < 16, (baseline, after)
        status, answer = post(port, json.dumps(payload).encode())
        assert status == 200 and answer["predictions"] == in_process
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_progress_bar_by_default_only_for_long_epochs(tiny_cfg, capfd):
    from seqlab.jobs.pipeline import train
    from seqlab.training import show_progress

    assert show_progress(None, 501) and not show_progress(None, 500)
    assert show_progress(True, 3) and not show_progress(False, 10_000)
    train(tiny_cfg("+encoder=cnn", "trainer.progress=true", "words.chars=none", "tracking.log_model=false",
                   "tracking.system_metrics=false"))
    out = capfd.readouterr().out
    assert "3/3" in out and "loss:" in out  # Keras' bar: 80 sentences / 32 per batch = 3 batches
