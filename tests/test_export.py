"""Export: a SavedModel and an ONNX model that tag a whole test set exactly as the .keras file does, on both
heads, through `python -m experiments.export` from a logged model; the ONNX wrapper without TensorFlow."""

import json
import subprocess
import sys

import numpy as np
import pytest

from seqlab.crf import CRF
from seqlab.export import decoding
from seqlab.testing import REPO, tiny_overrides, write_conll


def test_numpy_viterbi_decodes_the_crf_s_paths_with_its_constraints():
    import keras

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = CRF(len(labels), labels=labels, constraints="iob2")
    crf.build()
    rng = np.random.default_rng(0)
    for w in crf.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 2)
    emissions = rng.normal(size=(6, 7, len(labels))).astype("float32") * 3
    lengths = np.array([7, 1, 4, 0, 6, 2])
    mask = np.arange(7)[None] < lengths[:, None]
    expected = keras.ops.convert_to_numpy(crf.decode(emissions, mask))
    scores = [keras.ops.convert_to_numpy(s) for s in crf.decode_scores()]
    assert (decoding.viterbi(emissions, lengths, *scores) == expected).all()
    assert (decoding.argmax(emissions, lengths)[mask] == emissions.argmax(-1)[mask]).all()
    assert (decoding.argmax(emissions, lengths)[~mask] == -1).all()


@pytest.fixture(scope="module", params=["crf", "softmax"])
def logged(request, tmp_path_factory):
    """A tiny tagger of each head, trained and logged as a user's run logs it: (tmp folder, overrides, run)."""
    from seqlab.config import compose
    from seqlab.jobs.pipeline import train

    tmp = tmp_path_factory.mktemp(f"export-{request.param}")
    overrides = tiny_overrides(tmp, "+encoder=bilstm", "encoder.units=8", f"head={request.param}", "data.limit=120")
    result = train(compose(overrides))
    return tmp, overrides, result


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "onnx"])
def test_an_exported_tagger_tags_the_whole_test_set_as_the_keras_file_does(logged, fmt):
    from mlflow import MlflowClient

    from seqlab.config import compose
    from seqlab.data import load_corpus
    from seqlab.export.cli import main

    tmp, overrides, result = logged
    cfg = compose(overrides)
    test = load_corpus(cfg.data).test
    check = write_conll(tmp / "test.txt", test)
    out = tmp / fmt
    model_uri = MlflowClient(cfg.tracking.uri).get_run(result["run_id"]).data.tags["model_uri"]
    assert main([model_uri, "--format", fmt, "--out", str(out), "--check", check, "--uri", cfg.tracking.uri]) == 0
    assert main([model_uri, "--format", fmt, "--out", str(out), "--uri", cfg.tracking.uri]) == 2  # never over a folder
    meta = json.loads((out / "seqlab_export.json").read_text())
    assert meta["format"] == fmt and meta["head"] == cfg.head.name
    assert meta["decoder"] == {"savedmodel": "graph", "onnx": "viterbi" if cfg.head.name == "crf" else "argmax"}[fmt]
    from seqlab.export import load
    from seqlab.saving import load_tagger
    from seqlab.tracking import tagger_file

    tagger = load_tagger(tagger_file(model_uri, str(tmp / f"dl-{fmt}"), cfg.tracking.uri))
    sentences = [list(s.tokens) for s in test]
    expected = tagger.tag(sentences)
    assert load(out).tag(sentences) == expected  # the whole test set, tag for tag
    if fmt == "onnx":  # the wrapper alone, in a fresh process: onnxruntime and NumPy, no TensorFlow
        (tmp / "sentences.json").write_text(json.dumps(sentences))
        code = ("import json, sys, seqlab.export; t = seqlab.export.load(sys.argv[1]); "
                "print(json.dumps({'tags': t.tag(json.load(open(sys.argv[2]))), 'tf': 'tensorflow' in sys.modules}))")
        proc = subprocess.run([sys.executable, "-c", code, str(out), str(tmp / "sentences.json")], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"tags": expected, "tf": False}


def test_export_refuses_a_wrong_source_in_one_line(tmp_path, capsys):
    from seqlab.export.cli import main

    (tmp_path / "model.keras").write_bytes(b"not a zip")
    for source, expected in [(str(tmp_path / "model.keras"), "not a complete .keras file"),
                             ("nothing-here", "nothing-here: no such file, and not a model URI")]:
        assert main([source, "--format", "onnx", "--out", str(tmp_path / "new")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "new").exists()
