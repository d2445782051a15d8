"""The task object, the head interface, POS and chunking, and one place per choice."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from seqlab.testing import REPO, SHARED_DATA, compose, tiny_overrides

POS_SENTENCES = [
    ("The cat sat on the mat .", "DT NN VBD IN DT NN ."),
    ("A dog ran to the park .", "DT NN VBD TO DT NN ."),
    ("Cats like fish", "NNS VBP NN"),
    ("He saw $ 5 ( five )", "PRP VBD $ CD ( CD )"),
    ("Birds fly south .", "NNS VBP RB ."),
]


def write_columns(path: Path, rows: list[tuple[str, str]], repeat: int) -> str:
    lines = []
    for i in range(repeat):
        tokens, tags = rows[i % len(rows)]
        lines += [f"{tok} {tag}" for tok, tag in zip(tokens.split(), tags.split())] + [""]
    path.write_text("\n".join(lines))
    return str(path)


def column_overrides(tmp_path, rows, task, *extra):
    files = {split: write_columns(tmp_path / f"{split}.txt", rows, n) for split, n in (("train", 40), ("dev", 10), ("test", 10))}
    return tiny_overrides(tmp_path, "+encoder=bilstm", "encoder.units=8", "data=conll", f"task={task}", "trainer.epochs=2",
                          *(f"data.{k}={v}" for k, v in files.items()), *extra)


@pytest.mark.slow
def test_a_pos_run_logs_token_accuracy_with_an_unconstrained_crf(tmp_path):
    from seqlab.jobs.pipeline import train

    cfg = compose(column_overrides(tmp_path, POS_SENTENCES, "pos"))
    result = train(cfg)
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(result["run_id"])
    m = run.data.metrics
    assert result["monitor"] == "val_accuracy" and 0 <= m["test_accuracy"] <= 1 and "best_val_accuracy" in m
    assert [h.step for h in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]
    assert not any(k.startswith(("test_entity", "val_entity", "test_invalid")) for k in m)
    assert run.data.tags["task"] == "pos"
    report = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/classification_report.txt")
    assert "accuracy" in report and " PRP " in f" {report} " and "$" in report  # per-tag accuracy, odd tags included
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"accuracy_by_tag.png", "transition_matrix.png"} <= artifacts and "f1_by_type.png" not in artifacts
    tagger = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    tags = tagger.predict([["The", "dog", "sat", "."], ["(", "$", ")"]])
    assert [len(t) for t in tags] == [4, 3] and set(sum(tags, [])) <= {t for _, ts in POS_SENTENCES for t in ts.split()}
    keras_model = tagger.unwrap_python_model().tagger
    assert keras_model.head.constraints is None and keras_model.task.constraint_scheme is None


CHUNKS = [
    ("He reckons the current account deficit", "B-NP B-VP B-NP I-NP I-NP I-NP"),
    ("will narrow to only 1.8 billion", "B-VP I-VP B-PP B-NP I-NP I-NP"),
    ("in September .", "B-PP B-NP O"),
]


@pytest.mark.slow
def test_a_chunking_run_logs_span_f1_under_its_own_name(tmp_path):
    from seqlab.jobs.pipeline import train

    cfg = compose(column_overrides(tmp_path, CHUNKS, "chunk", "data.train_scheme=bioes"))
    result = train(cfg)
    client = MlflowClient(cfg.tracking.uri)
    m = client.get_run(result["run_id"]).data.metrics
    assert result["monitor"] == "val_chunk_f1"
    assert {"test_chunk_f1", "test_chunk_precision", "test_chunk_recall", "best_val_chunk_f1", "test_f1_NP"} <= set(m)
    assert len(client.get_metric_history(result["run_id"], "val_chunk_f1")) == 2
    assert not any("entity" in k for k in m)


@pytest.mark.skipif(not (SHARED_DATA / "conll2003").exists(), reason="the shared CoNLL-2003 files are absent")
def test_conll2003_pos_and_chunk_columns_read_as_their_tasks():
    from seqlab.data import load_corpus

    pos = load_corpus(compose(["data=conll2003", "data.tag_col=1", "data.limit=300"]).data, scheme="none")
    tags = {t for s in pos.train for t in s.tags}
    assert {"NNP", "VBZ", "JJ", "NN", "."} <= tags and not any(t.startswith(("B-", "I-")) for t in tags)
    chunk = load_corpus(compose(["data=conll2003", "data.tag_col=2", "data.limit=300"]).data)
    assert {"B-NP", "I-NP", "B-VP"} <= {t for s in chunk.train for t in s.tags}  # IOB1 read as IOB2


@pytest.mark.slow
def test_a_keras_file_tags_raw_tokens_after_import_seqlab_alone(tmp_path):
    from seqlab.jobs.pipeline import prepare

    cfg = compose(tiny_overrides(tmp_path, "+encoder=cnn", "data.train_scheme=bioes"))
    model = prepare(cfg).model
    sentences = [["EU", "rejects", "German", "call"], ["Paris"], [], ["@user", "lol", "#tbt", "in", "New", "York"]]
    expected = model.tag(sentences)
    assert [len(t) for t in expected] == [4, 1, 0, 6]
    assert all(t == "O" or t[:2] in ("B-", "I-") for seq in expected for t in seq)  # BIOES in, IOB2 out
    folder = tmp_path / "only"
    folder.mkdir()
    model.save(folder / "tagger.keras")
    code = ("import json, sys, seqlab\n"
            "m = seqlab.load_tagger(sys.argv[1])\n"  # as the README shows it: TensorFlow starts quietly
            "import keras\n"
            "seqlab.register_keras_objects()\n"  # Keras' own loader, after registering
            "k = keras.saving.load_model(sys.argv[1], compile=False)\n"
            "print(json.dumps([m.tag(json.loads(sys.argv[2])), k.tag(json.loads(sys.argv[2]))]))\n"
            # TensorFlow started without importing JAX (seqlab.runtime.quiet), and JAX still imports after it
            "import importlib.util\n"
            "if importlib.util.find_spec('jax'):\n"
            "    assert 'jax' not in sys.modules, 'TensorFlow imported JAX'\n"
            "    import jax; assert jax.jit(lambda x: x + 1)(1) == 2\n")
    proc = subprocess.run([sys.executable, "-c", code, str(folder / "tagger.keras"), json.dumps(sentences)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [expected, expected]
    for noise in ("absl::InitializeLog", "cudart_stub", "cuInit", "oneDNN custom operations"):  # no C++ start-up lines
        assert noise not in proc.stderr, proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["tagger.keras"]  # no side file


def test_a_new_encoder_is_one_registry_entry(monkeypatch):
    from seqlab.config import choices
    from seqlab.config import check_config
    from seqlab.model.encoders import CNNEncoder, build_encoder

    monkeypatch.setitem(choices.ENCODERS, "widecnn", choices.Option("seqlab.model.encoders:CNNEncoder",
                                                                    choices.CNNEncoderConfig, {"kernel_size": 7}))
    encoder = build_encoder({"name": "widecnn", "layers": 1, "filters": 4, "dropout": 0.0, "residual": False})
    assert isinstance(encoder, CNNEncoder) and encoder.kernel_size == 7
    cfg = compose(["+encoder=cnn"])
    cfg.encoder.name = "widecnn"
    check_config(cfg)  # the checks read the same registry
    cfg.encoder.name = "nosuch"
    with pytest.raises(Exception, match="encoder.name='nosuch' is invalid: expected one of bilstm, bigru, cnn, idcnn, transformer, widecnn"):
        check_config(cfg)


def test_defaults_are_written_once():
    """No YAML file under conf/ repeats a schema default: each default lives in its dataclass."""
    from omegaconf import OmegaConf

    from seqlab.config.choices import ENCODERS, HeadConfig
    from seqlab.config.schema import Config, TunerConfig, WordsConfig

    schemas = {"words": WordsConfig, "head": HeadConfig, "tuner": TunerConfig,
               **{f"encoder/{name}": option.schema for name, option in ENCODERS.items()}}
    repeated = []
    for folder, schema in [("config.yaml", Config), *((f"{g}", s) for g, s in schemas.items())]:
        paths = [REPO / "conf" / folder] if folder.endswith(".yaml") else \
            [REPO / "conf" / f"{folder}.yaml"] if "/" in folder else sorted((REPO / "conf" / folder).glob("*.yaml"))
        defaults = OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)
        for path in paths:
            body = yaml.safe_load(path.read_text()) or {}
            for key, value in body.items():
                if key in ("defaults", "name", "hydra") or isinstance(value, dict):
                    continue
                if key in defaults and defaults[key] == value:
                    repeated.append(f"{path.relative_to(REPO)}: {key}: {value}")
    assert repeated == []


def test_the_tracking_uri_default_follows_mlflow_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert compose(["+encoder=cnn"]).tracking.uri == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert compose(["+encoder=cnn"]).tracking.uri == "http://127.0.0.1:5000"


