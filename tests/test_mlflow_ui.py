"""What a person sees: a plain `mlflow ui` in the working directory lists the run, in a real headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_plain_mlflow_ui_shows_the_run_in_a_browser(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["PYTHONPATH"] = str(REPO)
    # MLflow's own defaults in a fresh working directory: sqlite:///mlflow.db and ./mlruns.
    train = subprocess.run(
        [sys.executable, "-m", "experiments.run", "+encoder=cnn", "data.limit=40", "trainer.epochs=1", "words.dim=8",
         "tracking.log_model=false", f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen(["mlflow", "ui", "--port", str(port)], cwd=tmp_path, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(0.5)
        page = f"http://127.0.0.1:{port}/#/experiments/1/runs"
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path}/chromium", "--virtual-time-budget=20000", "--dump-dom", page],
            capture_output=True, text=True, timeout=120,
        ).stdout
        assert "cnn-crf-wnut16" in dom  # the run's name, rendered by the UI's JavaScript
        assert "wnut16-train" in dom  # its logged input dataset
    finally:
        ui.terminate()
        ui.wait(timeout=30)
