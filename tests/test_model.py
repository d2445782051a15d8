"""Heads, encoders and the Tagger: masking, save/load."""

import keras
import numpy as np
import pytest
from keras import ops

from seqlab.data.vocab import PAD, UNK, Vocabulary
from seqlab.model import build_tagger
from seqlab.model.encoders import CNNEncoder, IDCNNEncoder, RNNEncoder
from seqlab.model.heads import argmax_decode, softmax_loss


def test_softmax_loss_ignores_padding_and_equals_mean_token_cross_entropy():
    rng = np.random.default_rng(0)
    em = rng.normal(size=(2, 4, 3)).astype("float32")
    tags = rng.integers(0, 3, size=(2, 4)).astype("int32")
    mask = np.array([[True, True, True, False], [True, False, False, False]])
    loss = float(softmax_loss(em, tags, mask))
    logp = em - np.log(np.exp(em).sum(-1, keepdims=True))
    expected = -np.mean([logp[b, t, tags[b, t]] for b in range(2) for t in range(4) if mask[b, t]])
    assert loss == pytest.approx(expected, rel=1e-5)
    em2, tags2 = em.copy(), tags.copy()
    em2[~mask] = 100.0
    tags2[~mask] = 2
    assert float(softmax_loss(em2, tags2, mask)) == pytest.approx(loss, rel=1e-6)
    assert ops.convert_to_numpy(argmax_decode(em, mask)).tolist()[1][1:] == [-1, -1, -1]


@pytest.mark.parametrize("encoder", [CNNEncoder(layers=2, filters=6, kernel_size=3, dropout=0.0),
                                     IDCNNEncoder(filters=6, kernel_size=3, dilations=[1, 2, 4], blocks=2, dropout=0.0),
                                     RNNEncoder("lstm", units=3, dropout=0.0), RNNEncoder("gru", units=3, dropout=0.0)])
def test_encoders_do_not_let_padding_leak_into_real_tokens(encoder):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    short = ops.convert_to_numpy(encoder(x[:, :5], mask=mask))
    padded_x = np.concatenate([x, rng.normal(size=(2, 3, 4)).astype("float32") * 10], axis=1)
    padded_x[1, 3:] = rng.normal(size=(5, 4)) * 10  # garbage in the padding
    padded_mask = np.concatenate([mask, np.zeros((2, 3), bool)], axis=1)
    long = ops.convert_to_numpy(encoder(padded_x, mask=padded_mask))
    np.testing.assert_allclose(long[0, :5], short[0], atol=1e-5)
    np.testing.assert_allclose(long[1, :3], short[1, :3], atol=1e-5)


WORDS = dict(dim=8, dropout=0.0, chars="cnn", char_dim=4, char_filters=5, char_kernel=3)
ENCODER = dict(name="bilstm", layers=1, units=4, dropout=0.0, recurrent_dropout=0.0)


def small_task():
    from seqlab.task import TaggingTask

    vocab = Vocabulary([PAD, UNK, *(f"w{i}" for i in range(28))], [PAD, UNK, *"abcdefghij"], ["O", "B-PER", "I-PER"])
    return TaggingTask("ner", vocab, "iob2")


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_tagger_trains_saves_and_reloads_with_identical_predictions(tmp_path, head):
    model = build_tagger(small_task(), WORDS, ENCODER, {"name": head, "constrained": head == "crf"})
    model.compile(optimizer="adam", run_eagerly=True)  # tracing the train step is 6 s; the contract test traces it
    rng = np.random.default_rng(2)
    x = {"words": np.array([[3, 4, 5, 0], [6, 7, 0, 0]], "int32"), "chars": rng.integers(1, 12, (2, 4, 3)).astype("int32")}
    y = np.array([[1, 2, 0, 0], [0, 1, 0, 0]], "int32")
    before = model.get_weights()
    assert np.isfinite(model.train_on_batch(x, y))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    path = tmp_path / "tagger.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict_on_batch(x), again.predict_on_batch(x))
    np.testing.assert_allclose(ops.convert_to_numpy(model(x)), ops.convert_to_numpy(again(x)), atol=1e-6)
    assert (model.predict_on_batch(x)[1, 2:] == -1).all()


@pytest.mark.parametrize("head, jit, encoder", [("crf", False, ENCODER), ("softmax", False, ENCODER),
                                                pytest.param("crf", True, dict(name="cnn", layers=1, filters=6, kernel_size=3),
                                                             marks=pytest.mark.slow)])  # XLA compiles: 7 s
def test_dev_scoring_in_one_pass_gives_evaluates_loss_and_the_decoders_tags(head, jit, encoder, monkeypatch):
    """Tagger.evaluate_and_tag_ids (one forward pass per dev batch) against Keras' evaluate and tag_ids (two):
    the same mean loss and the same tag ids per sentence, empty sentences and the input order included."""
    monkeypatch.setattr("seqlab.model.backend.XLA_MIN_BATCH", 1)  # with jit, these small batches under XLA too
    from seqlab.data import embedded
    from seqlab.data.corpus import Sentence
    from seqlab.model.backend import as_dataset
    from seqlab.task import TaggingTask
    from seqlab.training.batches import BucketedBatches
    from omegaconf import OmegaConf
    from seqlab.config.schema import WordsConfig

    sentences = embedded.read_embedded_wnut16()[:60]
    task = TaggingTask.build("ner", sentences, OmegaConf.structured(WordsConfig), "bioes")
    model = build_tagger(task, {**WORDS, "dim": 6}, encoder, {"name": head, "constrained": True}, jit_compile=jit)
    model.compile(optimizer="adam")
    dev = [*sentences[30:45], Sentence((), ()), *sentences[45:50]]  # lengths in no order, one empty
    batches = BucketedBatches(dev, task, batch_size=6, shuffle=False)  # several batches of different sizes
    tokens = [list(s.tokens) for s in dev]
    loss, ids = model.evaluate_and_tag_ids(batches, tokens)
    assert loss == pytest.approx(model.evaluate_loss(as_dataset(batches, xla=jit)), rel=1e-5)
    expected = model.tag_ids(tokens, 6)
    assert [len(row) for row in ids] == [len(s) for s in tokens]
    assert all(np.array_equal(a, b) for a, b in zip(ids, expected))


def test_under_xla_small_batches_run_in_the_plain_graph_and_tag_the_same(monkeypatch):
    """A compiled function under XLA sends batches of fewer than XLA_MIN_BATCH sentences to the plain graph
    (one trace for every shape: no compilation per request size or length), larger ones to XLA; the tags agree."""
    from seqlab.model import backend

    monkeypatch.setattr(backend, "XLA_MIN_BATCH", 4)
    model = build_tagger(small_task(), WORDS, dict(name="cnn", layers=1, filters=6, kernel_size=3),
                         {"name": "crf", "constrained": True}, jit_compile=True)
    decode = backend.compiled_function(model, model.decode_inputs, xla=True)
    sentences = [["w1", "w2", "w3"], ["w4"], ["w5", "w6"], ["w7", "w8", "w9", "w10", "w11"]]
    one_by_one = [decode(model.task.encode_tokens([s]))[0, : len(s)] for s in sentences]  # B = 1, four lengths
    assert (decode.graph.experimental_get_tracing_count(), decode.compiled.experimental_get_tracing_count()) == (1, 0)
    together = decode(model.task.encode_tokens(sentences))  # B = 4: XLA, padded to a bucket length
    assert decode.compiled.experimental_get_tracing_count() == 1
    assert [row[: len(s)].tolist() for row, s in zip(together, sentences)] == [row.tolist() for row in one_by_one]
