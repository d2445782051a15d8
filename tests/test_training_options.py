"""trainer.jit_compile, trainer.checkpoint + trainer.resume, optimizer.lr_decay / weight_decay,
head.reduction and init=pytorch: what each promises, on real training runs and a real MLflow store."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf
from mlflow.tracking import MlflowClient

from seqlab.compose import compose
from seqlab.config import check_config, jit_setting
from seqlab.crf import CRF
from seqlab.errors import ConfigError
from seqlab.model import jit
from seqlab.testing import tiny_overrides


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
    monkeypatch.setattr(jit, "XLA_FASTER_ON_CPU", {("cnn", "crf", "decode"): True})
    monkeypatch.setattr(jit, "_tf_has_gpu", lambda: False)
    assert jit.use_xla("auto", "cnn", "crf", "decode") and not jit.use_xla("auto", "cnn", "crf", "train")
    assert not jit.use_xla("auto", "bilstm", "crf", "decode")
    # The CRF's own loops: on a CPU auto compiles its loss only behind the encoders where that measured faster.
    monkeypatch.setattr(jit, "CRF_LOSS_XLA_FASTER_ON_CPU", {"cnn": True})
    assert jit.xla_inside_graphs("auto", "bilstm") == "decode" and jit.xla_inside_graphs("auto", "cnn") is True
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


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_crf_compiled_inside_a_graph_matches_the_plain_crf(reduction):
    """head.xla: the CRF's loss, its gradients and Viterbi as XLA functions inside a plain tf.function
    (padded to a bucket of 8 steps, one row empty, one of a single token) equal the uncompiled CRF;
    so does xla="decode" (auto's choice on a CPU), which compiles the Viterbi and nothing else."""
    from seqlab.crf import layer
    labels = ["O", "B-A", "I-A", "B-B", "I-B"]
    emissions, _, mask = _random_batch(5)
    tags = np.random.default_rng(2).choice([0, 1, 3], size=mask.shape).astype("int32")  # O, B-A, B-B: legal in IOB2
    weights = [np.random.default_rng(i).normal(size=shape).astype("float32") for i, shape in enumerate([(5, 5), (5,), (5,)])]
    results = []
    for xla in (False, True, "decode"):
        layer._SHARED.clear()
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
        compiled = {key[0] for key in layer._SHARED}
        assert compiled == {False: set(), True: {f"nll_{reduction}", "viterbi"}, "decode": {"viterbi"}}[xla]
    (loss0, grads0, paths0), *compiled_runs = results
    for loss1, grads1, paths1 in compiled_runs:
        np.testing.assert_allclose(loss1.numpy(), loss0.numpy(), rtol=1e-5)
        for g0, g1 in zip(grads0, grads1):
            np.testing.assert_allclose(g1.numpy(), g0.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(paths1.numpy(), paths0.numpy())
        assert paths1.shape == (6, 13) and (paths1.numpy()[2] == -1).all()


def test_loss_reduction_sum_is_the_batch_total():
    from seqlab.model.heads import CRFHead, SoftmaxHead

    labels = ["O", "B-A", "I-A"]
    emissions, tags, mask = _random_batch(3)
    mean_crf, sum_crf = CRFHead(labels, "iob2"), CRFHead(labels, "iob2", reduction="sum")
    mean_crf.build(), sum_crf.build()
    sum_crf.set_weights(mean_crf.get_weights())
    per_row = -np.asarray(mean_crf.log_likelihood(emissions, tags, mask))
    assert float(sum_crf.loss(emissions, tags, mask)) == pytest.approx(per_row.sum(), rel=1e-5)
    assert float(mean_crf.loss(emissions, tags, mask)) == pytest.approx(per_row.mean(), rel=1e-5)
    soft_mean, soft_sum = SoftmaxHead(labels), SoftmaxHead(labels, reduction="sum")
    tokens = mask.sum()
    assert float(soft_sum.loss(emissions, tags, mask)) == pytest.approx(float(soft_mean.loss(emissions, tags, mask)) * tokens, rel=1e-5)


def test_pytorch_init_draws_ncrfpp_bounds_and_zero_crf_scores():
    from seqlab.model.init import pytorch_init
    from seqlab.pipeline import build, prepare_data

    cfg = compose(["+encoder=bilstm", "data.limit=60", "words.dim=50", "encoder.units=100", "init=pytorch"])
    model = build(cfg, prepare_data(cfg)).model
    emb = np.asarray(model.features.embed.embeddings)
    assert np.abs(emb).max() <= math.sqrt(3 / 50) and np.abs(emb).max() > 0.9 * math.sqrt(3 / 50)
    lstm = [w for w in model.encoder.weights if "lstm" in w.path and "kernel" in w.path]
    assert lstm and all(np.abs(np.asarray(w)).max() <= 1 / math.sqrt(100) for w in lstm)
    assert all(not np.asarray(w).any() for w in model.head.weights)  # CRF scores start at 0
    before = [np.asarray(w).copy() for w in model.weights]
    pytorch_init(model, cfg.seed)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, model.weights))  # seeded


def _history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_a_resumed_run_trains_the_epochs_the_uninterrupted_run_trains(tmp_path):
    """4 epochs in one go, and 2 epochs then trainer.resume=true to 4: the same dev scores, losses and
    learning rates per epoch (lr_decay), the same test F1, and one MLflow run holding all 4 epochs.
    With optimizer.ema the checkpoint must hold the trained weights and the average apart."""
    from seqlab.pipeline import train

    common = ["+encoder=bilstm", "data.limit=150", "trainer.patience=10", "optimizer.name=sgd", "optimizer.lr=0.05",
              "optimizer.lr_decay=0.5", "optimizer.ema=0.9", "tracking.log_model=false", "tracking.system_metrics=false"]
    whole = train(compose(tiny_overrides(tmp_path / "whole", *common, "trainer.epochs=4")))
    ckpt = tmp_path / "ckpt"
    parts = tiny_overrides(tmp_path / "parts", *common, f"trainer.checkpoint={ckpt}")
    first = train(compose([*parts, "trainer.epochs=2"]))
    assert (ckpt / "state.json").exists() and [p.name for p in ckpt.glob("epoch-*")] == ["epoch-0002"]
    with pytest.raises(ConfigError, match="words.dim"):  # another config cannot resume it
        train(compose([*parts, "trainer.epochs=4", "trainer.resume=true", "words.dim=8"]))
    resumed = train(compose([*parts, "trainer.epochs=4", "trainer.resume=true"]))
    assert resumed["run_id"] == first["run_id"]

    client_whole = MlflowClient(f"sqlite:///{tmp_path}/whole/mlflow.db")
    client_parts = MlflowClient(f"sqlite:///{tmp_path}/parts/mlflow.db")
    for key in ("val_entity_f1", "loss", "learning_rate"):
        a, b = _history(client_whole, whole["run_id"], key), _history(client_parts, resumed["run_id"], key)
        assert [s for s, _ in b] == [1, 2, 3, 4]
        np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=1e-4, err_msg=key)
    lrs = [v for _, v in _history(client_parts, resumed["run_id"], "learning_rate")]
    np.testing.assert_allclose(lrs, [0.05 / (1 + 0.5 * e) for e in range(4)], rtol=1e-6)
    assert resumed["test_entity_f1"] == pytest.approx(whole["test_entity_f1"], abs=1e-6)
    run = client_parts.get_run(resumed["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["peak_rss_mb"] > 100
    assert len(client_parts.search_runs([run.info.experiment_id])) == 1


def test_crfs_of_one_size_share_their_xla_functions_across_models():
    """XLA keeps every compiled function for the process' life: a search or multirun that builds many
    taggers must reuse the CRF's compiled functions, not add new ones per model (which exhausted the
    process' memory maps after some dozens of models before)."""
    from seqlab.crf import layer

    emissions, tags, mask = _random_batch(5)
    counts = []
    for _ in range(3):
        keras.backend.clear_session()
        crf = CRF(5, xla=True)
        crf.build()
        signature = [tf.TensorSpec((None, None, 5)), tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.bool)]
        step = tf.function(lambda e, t, m: (crf.nll(e, t, m), crf.decode(e, m)), input_signature=signature)
        step(emissions, tags, mask)
        counts.append(len(layer._SHARED))
    assert counts[0] == counts[1] == counts[2] >= 2


def _tiny_fit(ema, epochs=3):
    """A tiny CNN-CRF trained with SGD; returns (per-epoch losses, per-epoch (weights dev scored, the
    optimizer's averages) pairs, the model)."""
    from seqlab.data.corpus import Sentence
    from seqlab.data.vocab import PAD, UNK, Vocabulary
    from seqlab.model import build_tagger
    from seqlab.task import TaggingTask
    from seqlab.training import BucketedBatches, fit, make_optimizer

    keras.utils.set_random_seed(0)
    task = TaggingTask("ner", Vocabulary([PAD, UNK, "a", "b"], [PAD, UNK, "a", "b"], ["O", "B-X", "I-X"]), "iob2")
    model = build_tagger(task, dict(dim=4, dropout=0.0, chars="none"), dict(name="cnn", layers=1, filters=4, kernel_size=3,
                         dropout=0.0, residual=False), dict(name="crf", constrained=True), seed=7, jit_compile=False)
    model.compile(optimizer=make_optimizer("sgd", 0.2, None, momentum=0.9, ema=ema))
    batches = BucketedBatches([Sentence(("a", "b"), ("B-X", "I-X")), Sentence(("b", "a"), ("O", "O"))] * 4, task, 2, seed=0)
    scores, seen, losses = iter([0.1, 0.9, 0.2]), [], []

    def score_dev():
        averages = model.optimizer._model_variables_moving_average if ema else []
        seen.append(([np.array(v) for v in model.trainable_variables], [np.array(a) for a in averages]))
        return next(scores)

    fit(model, batches, epochs, score_dev, "val_entity_f1", patience=5,
        on_epoch=lambda epoch, metrics: losses.append(metrics["loss"]))
    return losses, seen, model


def test_optimizer_ema_scores_and_keeps_the_average_while_training_goes_on_from_the_trained_weights():
    plain_losses, plain_seen, _ = _tiny_fit(None)
    losses, seen, model = _tiny_fit(0.9)
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-6)  # the average never feeds back into training
    for (scored, averages), (trained, _) in zip(seen, plain_seen):
        for s, a in zip(scored, averages):
            np.testing.assert_allclose(s, a, rtol=1e-6)  # dev scored the average ...
        assert max(np.abs(s - t).max() for s, t in zip(scored, trained)) > 1e-3  # ... not the trained weights
    for now, best in zip(model.trainable_variables, seen[1][0]):  # the best epoch (2) is the model kept
        np.testing.assert_allclose(np.array(now), best, rtol=1e-6)


def test_singleton_unk_replaces_only_words_seen_once_at_its_rate_and_the_same_way_on_resume():
    from seqlab.data.corpus import Sentence
    from seqlab.data.vocab import UNK_ID
    from seqlab.task import TaggingTask
    from seqlab.training import BucketedBatches

    rare = [f"r{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(400)]  # each seen once
    sentences = [Sentence(("the", word, "the"), ("O", "B-X", "O")) for word in rare]
    words = OmegaConf.create(dict(min_freq=1, lowercase=False, digits_to_zero=True, max_word_len=20))
    task = TaggingTask.build("ner", sentences, words, "iob2")
    the, ids = task.vocabulary.word_id("the"), {task.vocabulary.word_id(w) for w in rare}

    def epoch_words(batches, epoch):
        """The word ids each sentence had in that epoch's batches: int [S, 3], in sentence order."""
        batches.start_epoch(epoch)
        out = np.zeros((len(sentences), 3), np.int64)
        for i in range(len(batches)):
            out[batches.batches[i]] = batches[i][0]["words"]
        return out

    plain = epoch_words(BucketedBatches(sentences, task, 16, seed=3), 0)
    assert UNK_ID not in plain and (plain == the).sum() == 800
    batches = BucketedBatches(sentences, task, 16, seed=3, singleton_unk=0.5)
    first, second = epoch_words(batches, 0), epoch_words(batches, 1)
    for seen in (first, second):
        assert (seen == the).sum() == 800  # a frequent word is never replaced
        replaced = (seen == UNK_ID).sum()
        assert 150 < replaced < 250  # about half of the 400 singletons (p < 1e-4 outside)
        assert replaced + sum(int(w in ids) for w in seen.ravel()) == 400
    assert not np.array_equal(first, second)  # drawn again each epoch ...
    again = BucketedBatches(sentences, task, 16, seed=3, singleton_unk=0.5)
    np.testing.assert_array_equal(epoch_words(again, 1), second)  # ... from (seed, epoch) alone: a resume sees the same
