"""trainer.jit_compile and the speed and training settings: how each resolves, the one-line refusals, and the
CRF compiled inside a graph against the plain CRF (the resume and optimizer runs: tests/test_training.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqlab.config import compose
from seqlab.config import check_config, jit_setting
from seqlab.crf import CRF
from seqlab.errors import ConfigError
from seqlab.model import jit


@pytest.mark.parametrize("override, expected", [
    ("trainer.jit_compile=maybe", "trainer.jit_compile='maybe' is invalid: expected auto, true or false"),
    ("trainer.resume=true", "trainer.resume=True is invalid: expected trainer.checkpoint=DIR"),
    ("head.reduction=avg", "head.reduction='avg' is invalid: expected mean or sum"),
    ("init=xavier", "init='xavier' is invalid: expected keras or pytorch"),
    ("optimizer.lr_decay=-1", "optimizer.lr_decay=-1"),
    ("optimizer.ema=1.0", "optimizer.ema=1.0 is invalid: expected null or a float in (0, 1)"),
])
def test_bad_speed_and_training_settings_name_the_key(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_config(compose(["+encoder=bilstm", override]))


def test_jit_compile_false_true_and_auto_resolve_per_encoder_head_and_phase(monkeypatch):
    assert not jit.use_xla(False, "bilstm", "crf", "train") and not jit.use_xla("false", "cnn", "crf", "decode")
    assert jit.use_xla(True, "bilstm", "crf", "train") and jit.use_xla("true", "idcnn", "softmax", "decode")
    monkeypatch.setattr(jit, "_tf_has_gpu", lambda: False)
    assert not jit.use_xla("auto", "cnn", "crf", "decode") and not jit.use_xla("auto", "bilstm", "crf", "train")
    # A transformer scores dev under XLA on a CPU (the same shapes every epoch: faster from the second), and
    # trains and decodes one-off passes in the graph (XLA's first pass is the slower).
    assert jit.use_xla("auto", "transformer", "crf", "dev") and not jit.use_xla("auto", "transformer", "crf", "train")
    assert not jit.use_xla("auto", "transformer", "crf", "decode") and not jit.use_xla("auto", "bilstm", "crf", "dev")
    assert not jit.use_xla(False, "transformer", "softmax", "dev")
    # The CRF's own loops: on a CPU auto compiles its loss only behind the encoders where that measured faster.
    monkeypatch.setattr(jit, "CRF_LOSS_XLA_FASTER_ON_CPU", frozenset({"cnn"}))
    assert jit.xla_inside_graphs("auto", "bilstm") is False and jit.xla_inside_graphs("auto", "cnn") == "train"
    assert jit.xla_inside_graphs(True, "bilstm") is True and jit.xla_inside_graphs(False, "cnn") is False
    monkeypatch.setattr(jit, "_tf_has_gpu", lambda: True)
    assert jit.use_xla("auto", "bilstm", "crf", "train")  # Keras' own choice where TensorFlow sees a GPU
    assert jit.xla_inside_graphs("auto", "bilstm") is True
    with pytest.raises(ValueError):
        jit_setting("sometimes")


def _random_batch(k, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([13, 1, 0, 7, 13, 2])
    mask = np.arange(13)[None] < lengths[:, None]
    return (rng.normal(size=(6, 13, k)).astype("float32"), rng.integers(0, k, size=(6, 13)).astype("int32"), mask)


@pytest.mark.parametrize("reduction, modes", [("mean", (False, True)),
                                              pytest.param("sum", (False, True, "train", "decode"), marks=pytest.mark.slow)])
def test_crf_compiled_inside_a_graph_matches_the_plain_crf(reduction, modes):
    """head.xla: the CRF's loss, its gradients and Viterbi as XLA functions inside a plain tf.function
    (padded to a bucket of 8 steps, one row empty, one of a single token) equal the uncompiled CRF;
    so do xla="train" (auto's choice behind a CNN or BiGRU on a CPU) and xla="decode", which compile the loss
    or the Viterbi and nothing else. xla=True is CRF(K)'s default. (The fast tier compiles xla=True only: each
    mode is a few seconds of XLA compilation.)"""
    from seqlab.crf import xla as compiled
    labels = ["O", "B-A", "I-A", "B-B", "I-B"]
    emissions, _, mask = _random_batch(5)
    tags = np.random.default_rng(2).choice([0, 1, 3], size=mask.shape).astype("int32")  # O, B-A, B-B: legal in IOB2
    weights = [np.random.default_rng(i).normal(size=shape).astype("float32") for i, shape in enumerate([(5, 5), (5,), (5,)])]
    results = []
    assert CRF(5).xla is True  # CRF(K) is fast by default: what xla=True does below
    for xla in modes:
        compiled.clear()
        crf = CRF(5, labels=labels, constraints="iob2", xla=xla)
        crf.build()
        crf.set_weights(weights)
        signature = [tf.TensorSpec((None, None, 5)), tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.bool)]

        @tf.function(input_signature=signature)
        def loss_grads_paths(e, t, m):
            with tf.GradientTape() as tape:
                tape.watch(e)
                loss = crf.nll(e, t, m, reduction)
            return loss, tape.gradient(loss, [e, *crf.trainable_weights]), crf.decode(e, m)

        results.append(loss_grads_paths(emissions, tags, mask))
        assert compiled.compiled_names() == {False: set(), True: {f"nll_{reduction}", "viterbi"},
                                            "train": {f"nll_{reduction}"}, "decode": {"viterbi"}}[xla]
    (loss0, grads0, paths0), *compiled_runs = results
    for loss1, grads1, paths1 in compiled_runs:
        np.testing.assert_allclose(loss1.numpy(), loss0.numpy(), rtol=1e-5)
        for g0, g1 in zip(grads0, grads1):
            np.testing.assert_allclose(g1.numpy(), g0.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(paths1.numpy(), paths0.numpy())
        assert paths1.shape == (6, 13) and (paths1.numpy()[2] == -1).all()


@pytest.mark.slow
def test_crfs_of_one_size_share_their_xla_functions_across_models():
    """XLA keeps every compiled function for the process' life: a search or multirun that builds many
    taggers must reuse the CRF's compiled functions, not add new ones per model (which exhausted the
    process' memory maps after some dozens of models before)."""
    from seqlab.crf import xla as compiled

    emissions, tags, mask = _random_batch(5)
    counts = []
    for _ in range(3):
        keras.backend.clear_session()
        crf = CRF(5, xla=True)
        crf.build()
        signature = [tf.TensorSpec((None, None, 5)), tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.bool)]
        step = tf.function(lambda e, t, m: (crf.nll(e, t, m), crf.decode(e, m)), input_signature=signature)
        step(emissions, tags, mask)
        counts.append(len(compiled._COMPILED))
    assert counts[0] == counts[1] == counts[2] >= 2


