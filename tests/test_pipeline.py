"""The main entry end to end on a tiny slice, against a real (SQLite) MLflow store."""

import os
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, run_cli, tiny_overrides


def run_and_fetch(cfg):
    from seqlab.jobs.pipeline import train

    result = train(cfg)
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    return result, client, client.get_run(result["run_id"])


@pytest.mark.parametrize("head", [pytest.param("crf", marks=pytest.mark.slow), "softmax"])
def test_training_run_records_the_whole_mlflow_contract(tiny_cfg, head, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # tiny runs last a few seconds
    cfg = tiny_cfg("+encoder=bilstm", f"head={head}", "trainer.epochs=2", f"tracking.register_as=tagger-{head}",
                   "trainer.jit_compile=auto", "tracking.calibration=true",  # the default path, XLA CRF included
                   "tracking.latency_sentences=5")
    result, client, run = run_and_fetch(cfg)
    version = client.get_registered_model(f"tagger-{head}").latest_versions[0]
    assert version.run_id == run.info.run_id and version.source.startswith("models:/")
    assert run.info.status == "FINISHED"
    assert run.data.tags["encoder"] == "bilstm" and run.data.tags["head"] == head and run.data.tags["data"] == "wnut16"

    params = run.data.params
    assert params["trainer.epochs"] == "2" and params["head.name"] == head and params["encoder.units"] == "100"
    assert params["seed"] == "42" and params["tracking.uri"] == cfg.tracking.uri
    assert not any(k.startswith("stats.") for k in params)  # params are the config; counts are in data_stats.json

    history = client.get_metric_history(run.info.run_id, "val_entity_f1")
    assert [m.step for m in history] == [1, 2]
    for key in ("val_loss", "loss", "epoch_seconds", "dev_seconds"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    metrics = run.data.metrics
    for key in ("test_entity_f1", "test_entity_precision", "test_entity_recall", "test_entity_f1_strict",
                "oov_rate_dev", "oov_rate_test", "num_params", "test_token_ece", "test_entity_ece", "train_sentences",
                "predict_sentences_per_sec", "latency_ms_p50", "latency_ms_p95"):
        assert key in metrics
    assert 0.0 <= metrics["test_token_ece"] <= 1.0 and 0.0 <= metrics["test_entity_ece"] <= 1.0
    assert 0 < metrics["latency_ms_p50"] <= metrics["latency_ms_p95"] < 10_000
    assert run.data.tags["dev_digest"] != run.data.tags["test_digest"] and "fold" not in run.data.tags
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(metrics)
    per_type = {k for k in metrics if k.startswith("test_f1_")}
    assert "test_f1_person" in per_type and len(per_type) >= 5
    assert 0.0 <= metrics["test_entity_f1"] <= 1.0
    assert metrics["test_entity_f1"] == pytest.approx(result["test_entity_f1"])

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "classification_report.txt", "transition_matrix.png", "f1_by_type.png", "model_summary.txt",
            "test_predictions.jsonl", "data_stats.json", "calibration.png"} <= artifacts
    config_text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    assert f"name: {head}" in config_text and "bilstm" in config_text
    report = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/classification_report.txt")
    assert "person" in report and "micro avg" in report
    png = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/transition_matrix.png", dst_path=str(tmp_path))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # The logged model tags raw token lists, without any side files.
    assert run.data.tags["model_uri"] == f"runs:/{run.info.run_id}/bilstm-{head}-wnut16"  # named after what it is
    model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    sentences = [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."], ["Paris"], []]
    tags = model.predict(sentences)
    assert [len(t) for t in tags] == [9, 1, 0]
    labels = set(model.unwrap_python_model().tagger.task.labels)  # held by the .keras file alone
    logged = mlflow.artifacts.download_artifacts(f"{run.data.tags['model_uri']}/artifacts", dst_path=str(tmp_path / "m"))
    assert sorted(os.listdir(logged)) == ["tagger.keras"]  # no vocabulary or label side files
    assert "O" in labels and all(t in labels for seq in tags for t in seq)
    # Confidence through MLflow's params, declared in the signature.
    assert set(model.metadata.signature.params.to_dict()[i]["name"] for i in range(2)) == {"scores", "nbest"}
    scored = model.predict(sentences, params={"scores": True, "nbest": 2})
    assert [s["tags"] for s in scored] == tags
    assert all(0.0 <= p <= 1.0 for s in scored for p in s["scores"]) and [len(s["scores"]) for s in scored] == [9, 1, 0]
    assert all(len(s["nbest"]) == 2 and s["nbest"][0]["tags"] == s["tags"] for s in scored[:2])
    # Batches whose longest sentence has one token, or none at all.
    for batch in ([["Paris"]], [["Paris"], ["EU"]], [[], ["EU"]], [[]], [[], []]):
        tagged = model.predict(batch)
        assert [len(t) for t in tagged] == [len(s) for s in batch], batch
        assert all(t in labels for seq in tagged for t in seq)


@pytest.mark.slow
def test_pyfunc_matches_in_process_decoding(tiny_cfg):
    """The reloaded model predicts exactly what the trained model predicted (CRF Viterbi decoding)."""
    from seqlab.data import load_corpus
    from seqlab.jobs.pipeline import train

    cfg = tiny_cfg("+encoder=cnn", "head=crf", "trainer.jit_compile=auto")
    result = train(cfg)
    corpus = load_corpus(cfg.data)
    tokens = [list(s.tokens) for s in corpus.test[:40]]
    reloaded = mlflow.pyfunc.load_model(f"runs:/{result['run_id']}/cnn-crf-wnut16")
    first, second = reloaded.predict(tokens), reloaded.predict(list(reversed(tokens)))
    assert first == list(reversed(second))  # batching and order do not change the output
    assert [len(t) for t in first] == [len(s) for s in tokens]


@pytest.mark.slow
def test_no_encoder_prints_one_line_and_exits_2():
    proc = run_cli(timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "+encoder=" in lines[0] and "bilstm" in lines[0] and "cnn" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.epoch=3", "Key 'epoch' not in 'TrainerConfig'"),
        ("head=crff", "Could not find 'head/crff'"),
        ("trainer.epochs=many", "could not be converted to Integer"),
        ("trainer.epochs=0", "trainer.epochs=0 is invalid"),
        ("encoder.units=x", "could not be converted to Integer"),
    ],
)
def test_bad_config_values_give_a_clear_message(override, expected, tmp_path):
    proc = run_cli("+encoder=bilstm", override, f"tracking.uri=sqlite:///{tmp_path}/m.db", timeout=120)
    assert proc.returncode == 2  # the README's status for a refused config, Hydra's own refusals included
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.db").exists()  # nothing half-written


@pytest.mark.slow
def test_help_and_cfg_job_do_not_import_tensorflow(tmp_path):
    """A fake `tensorflow` that fails on import proves the light start-up."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('tensorflow was imported')\n")
    env = {**__import__("os").environ, "PYTHONPATH": f"{fake.parent}:{REPO / 'src'}"}
    for args in (["--help"], ["+encoder=bilstm", "--cfg", "job"]):
        proc = subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "tensorflow was imported" not in proc.stderr
    assert "encoder:" in proc.stdout and "name: bilstm" in proc.stdout


@pytest.mark.slow
def test_nan_loss_in_the_first_epoch_is_one_line_and_a_failed_run(tmp_path):
    overrides = tiny_overrides(tmp_path, "optimizer.name=sgd", "optimizer.lr=1e38", "optimizer.clipnorm=null",
                               "tracking.log_model=false")
    proc = run_cli("+encoder=bilstm", *overrides)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: the loss became NaN or infinite in the first epoch" in proc.stderr.strip().splitlines()[-1]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    assert run.info.status == "FAILED" and "NaN" in run.data.tags["error"]
