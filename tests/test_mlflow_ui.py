"""What a person sees: a plain `mlflow ui` in the working directory (one worker), in a real headless Chromium.

The README's link opens the training runs; the Columns menu puts test_entity_f1 and val_entity_f1
in the table, next to the run's named, registered model.
"""

import os
import shutil
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, free_port, run_cli, wait_http

CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_runs_page_shows_f1_columns_and_the_registered_model(tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["PYTHONPATH"] = str(REPO)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # the UI as docs/tracking.md starts it (8 fewer processes)
    # MLflow's own defaults in a fresh working directory: sqlite:///mlflow.db and ./mlruns.
    train = run_cli("+encoder=cnn", "data.limit=60", "trainer.epochs=1", "words.dim=8", "words.char_filters=8",
                    "encoder.filters=16", "trainer.jit_compile=false",  # small: the page is the test
                    "tracking.register_as=wnut-tagger", f"hydra.run.dir={tmp_path}/out", cwd=tmp_path, env=env)
    assert train.returncode == 0, train.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("seqlab")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.search_runs([experiment.experiment_id])[0]

    port = free_port()
    # One worker: the page does not depend on how many serve it, and each of the default 4 costs ~3 CPU-s to start.
    ui = subprocess.Popen(["mlflow", "ui", "--port", str(port), "--workers", "1"], cwd=tmp_path, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The README's link: the training runs, best test F1 first.
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs"
                      "?workflowType=machine_learning&orderByKey=metrics.%60test_entity_f1%60&orderByAsc=false")
            page.get_by_text("cnn-crf-wnut16").first.wait_for(timeout=90000)
            assert page.get_by_text("wnut16-train").count() >= 1  # its logged input dataset
            # The README's steps: Columns, then tick the two metrics (and untick Dataset and Source to make room).
            page.get_by_role("button", name="Columns").click()
            for name in ("test_entity_f1", "val_entity_f1", "Dataset", "Source"):
                page.get_by_placeholder("Search columns").fill(name)
                page.locator(".du-bois-light-tree-title").filter(has_text=name).filter(has_not_text="_strict") \
                    .filter(has_not_text="best_").filter(has_not_text="(").first.click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "runs.png"))
            headers = page.locator("[role=columnheader]").all_inner_texts()
            assert "test_entity_f1" in headers and "val_entity_f1" in headers
            index = page.locator("[role=row]", has_text="cnn-crf-wnut16").first.get_attribute("row-index")
            row = " ".join(page.locator(f"[role=row][row-index='{index}']").all_inner_texts())  # pinned + scrolled parts
            assert "wnut-tagger" in row and "v1" in row  # the named, registered model
            cells = row.split()
            shown = float(cells[cells.index("v1") + 1])  # the first metric column after the model: test_entity_f1
            assert shown == pytest.approx(run.data.metrics["test_entity_f1"], abs=5e-3)
            browser.close()
    finally:
        ui.terminate()
        ui.wait(timeout=30)
