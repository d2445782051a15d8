"""Casing, pretrained vectors, presets."""

import mlflow
import numpy as np
import pytest

from seqlab.testing import compose, tiny_overrides
from seqlab.data.corpus import Sentence
from seqlab.data.vectors import embeddings_for, load_vectors
from seqlab.data.vocab import CASINGS, Vocabulary, casing_id
from seqlab.errors import ConfigError, DataError


def test_casing_classes():
    got = {t: CASINGS[casing_id(t)] for t in ["1984", "12-3", "paris", "EU", "Paris", "x4X", "@x_"]}
    assert got == {"1984": "numeric", "12-3": "mainly_numeric", "paris": "all_lower", "EU": "all_upper",
                   "Paris": "initial_upper", "x4X": "contains_digit", "@x_": "all_lower"}
    assert CASINGS[casing_id("--")] == "other"


def write_vectors(path, header):
    lines = ["paris 1 2 3", "Europe 4 5 6", "the 7 8 9", "berlin 0.5 0.25 2"]
    path.write_text(("4 3\n" if header else "") + "\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("header", [True, False])
def test_pretrained_vectors_initialise_found_words_and_report_coverage(tmp_path, header):
    vocab = Vocabulary.build([Sentence(("Paris", "Europe", "rejects", "the"), ("B-LOC", "B-LOC", "O", "O"))])
    vectors = load_vectors(write_vectors(tmp_path / "v.txt", header))
    embeddings = embeddings_for(vocab, vectors, 3, seed=0)
    assert embeddings.coverage == 0.75  # Paris (via lower case), Europe, the; not rejects
    matrix = embeddings.trained
    assert matrix[vocab.word_id("Paris")].tolist() == [1, 2, 3] and matrix[vocab.word_id("the")].tolist() == [7, 8, 9]
    assert not np.allclose(matrix[vocab.word_id("rejects")], 0) and (matrix[0] == 0).all()
    # berlin: never in training, known to the vectors -> its own fixed id, with its vector (float16)
    assert vocab.extra_words == ["berlin"] and vocab.word_id("Berlin") == len(vocab.words)
    assert embeddings.fixed.dtype == np.float16 and embeddings.fixed[0].tolist() == [0.5, 0.25, 2.0]
    assert vocab.word_id("Madrid") == 1  # in neither: UNK
    with pytest.raises(ConfigError, match="words.dim=5 but .* 3-dimensional"):
        embeddings_for(vocab, vectors, 5, seed=0)


def test_bad_vectors_file_names_the_line(tmp_path):
    (tmp_path / "bad.txt").write_text("a 1 2\nb 1\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected a word and 2 numbers"):
        load_vectors(str(tmp_path / "bad.txt"), "glove")


@pytest.mark.slow
def test_run_with_pretrained_frozen_vectors_logs_coverage(tmp_path):
    from seqlab.jobs.pipeline import train

    vectors = tmp_path / "glove.txt"
    vectors.write_text("".join(f"{w} " + " ".join(["0.5"] * 16) + "\n" for w in ["the", "i", "a", "to", "you", "and"]))
    cfg = compose(tiny_overrides(tmp_path, "+encoder=bigru", "words.casing=true", f"words.pretrained={vectors}",
                                 "words.freeze=true", "tracking.log_model=false"))
    result = train(cfg)
    run = mlflow.tracking.MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert 0 < run.data.metrics["pretrained_coverage"] < 0.05
    assert run.data.metrics["num_params"] > 0 and run.data.metrics["train_sentences_per_sec"] > 0
    summary = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/model_summary.txt")
    assert "Non-trainable params" in summary and "features" in summary


@pytest.mark.slow
@pytest.mark.parametrize("preset, encoder", [("ma_hovy_2016", "bilstm"), ("lample_2016", "bilstm"), ("strubell_2017", "idcnn")])
def test_presets_select_their_encoder_and_run(tmp_path, preset, encoder):
    from seqlab.jobs.pipeline import train

    full = compose([f"+experiment={preset}"])
    assert full.encoder.name == encoder and full.head.name == "crf"
    if preset == "ma_hovy_2016":
        assert full.encoder.units == 200 and full.words.chars == "cnn" and full.optimizer.momentum == 0.9
    if preset == "lample_2016":
        assert full.words.chars == "lstm" and full.words.char_units == 25
    small = ["encoder.dropout=0.1", "words.dim=8", "data.limit=40", "tracking.log_model=false"]
    small += ["encoder.units=8"] if encoder == "bilstm" else ["encoder.filters=8"]
    cfg = compose([f"+experiment={preset}", *tiny_overrides(tmp_path, *small)])
    result = train(cfg)
    run = mlflow.tracking.MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.data.tags["encoder"] == encoder and run.info.status == "FINISHED"
