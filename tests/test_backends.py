"""The CRF and the tagger on JAX and PyTorch, each in its own process (Keras fixes the backend at import).

This session runs on TensorFlow (the default); every test here starts a child with KERAS_BACKEND set.
"""

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, compose, tiny_overrides

OTHER_BACKENDS = ["jax", "torch"]

pytestmark = [pytest.mark.slow, pytest.mark.backends]


def on_backend(backend: str, args: list[str], timeout: int = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tagger_saved_on_tensorflow(tmp_path_factory):
    """A tagger built and saved here, on TensorFlow, with what it decoded (tests/saved_tagger_check.py reads it)."""
    from seqlab.jobs.pipeline import prepare

    folder = tmp_path_factory.mktemp("saved_on_tensorflow")
    model = prepare(compose(tiny_overrides(folder, "+encoder=cnn", "words.chars=lstm", "words.casing=true"))).model
    sentences = [["EU", "rejects", "German", "call"], ["Paris"], [], ["@user", "lol", "#tbt", "in", "New", "York", "!"]]
    model.save(folder / "tagger.keras")
    np.save(folder / "emissions.npy", np.asarray(model(model.task.encode_tokens([s for s in sentences if s]))))
    (folder / "tagged.json").write_text(json.dumps({"sentences": sentences, "tags": model.tag(sentences)}))
    return folder


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_crf_suite_the_guide_and_a_tagger_saved_on_tensorflow_pass_on(backend, tagger_saved_on_tensorflow):
    """One child per backend: the brute-force CRF tests (log Z, Viterbi, marginals, n-best, masking, length 1 and
    empty rows, constraints, gradients, the backend's compiler), docs/crf.md, and a tagger saved on TensorFlow
    that loads there and gives the same emissions and tags (tests/saved_tagger_check.py)."""
    proc = on_backend(backend, [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                                "tests/test_crf.py", "tests/test_docs.py", "tests/saved_tagger_check.py"],
                      env={"SEQLAB_SAVED_TAGGER": str(tagger_saved_on_tensorflow)})
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in tail and "failed" not in tail, tail


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_run_on_another_backend_logs_the_same_contract_and_its_model_loads_here(tmp_path, backend):
    overrides = tiny_overrides(tmp_path, "+encoder=cnn", "encoder.filters=8", "trainer.epochs=2")
    proc = on_backend(backend, [sys.executable, "-m", "experiments.run", *overrides, f"hydra.run.dir={tmp_path}/out"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = compose(overrides).tracking.uri
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_entity_f1")] == [1, 2]
    assert {"test_entity_f1", "best_val_entity_f1", "test_invalid_transition_rate", "num_params"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"transition_matrix.png", "f1_by_type.png", "test_predictions.jsonl", "config.yaml"} <= artifacts
    # The model saved on that backend tags here, on TensorFlow, exactly as it tagged there.
    model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    logged = [json.loads(line) for line in
              mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/test_predictions.jsonl").splitlines()]
    assert model.predict([r["tokens"] for r in logged]) == [r["pred"] for r in logged]
