"""The fit loop and what it promises: early stopping (ties broken by the dev loss), the weights' moving
average, singleton UNK, loss reductions, initialisation, and exact resumption (real runs, a real MLflow store)."""

import math

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from seqlab.config import compose
from seqlab.errors import ConfigError
from seqlab.testing import tiny_overrides


def _random_batch(k, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([13, 1, 0, 7, 13, 2])
    mask = np.arange(13)[None] < lengths[:, None]
    return (rng.normal(size=(6, 13, k)).astype("float32"), rng.integers(0, k, size=(6, 13)).astype("int32"), mask)


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
    from seqlab.jobs.pipeline import prepare

    cfg = compose(["+encoder=bilstm", "data.limit=60", "words.dim=50", "encoder.units=100", "init=pytorch"])
    model = prepare(cfg).model
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


@pytest.mark.slow
def test_a_resumed_run_trains_the_epochs_the_uninterrupted_run_trains(tmp_path, recwarn):
    """4 epochs in one go, and 2 epochs then trainer.resume=true to 4: the same dev scores, losses and
    learning rates per epoch (lr_decay), the same test F1, and one MLflow run holding all 4 epochs.
    With optimizer.ema the checkpoint must hold the trained weights and the average apart."""
    from seqlab.jobs.pipeline import train

    common = ["+encoder=cnn", "data.limit=80", "trainer.patience=10", "optimizer.name=sgd", "optimizer.lr=0.05",
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
    assert not [w for w in recwarn if "Skipping variable loading" in str(w.message)]  # no spurious optimizer warning
    for key in ("val_entity_f1", "val_loss", "loss", "learning_rate"):
        a, b = _history(client_whole, whole["run_id"], key), _history(client_parts, resumed["run_id"], key)
        assert [s for s, _ in b] == [1, 2, 3, 4]
        np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=1e-4, err_msg=key)
    lrs = [v for _, v in _history(client_parts, resumed["run_id"], "learning_rate")]
    np.testing.assert_allclose(lrs, [0.05 / (1 + 0.5 * e) for e in range(4)], rtol=1e-6)
    assert resumed["test_entity_f1"] == pytest.approx(whole["test_entity_f1"], abs=1e-6)
    run = client_parts.get_run(resumed["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["peak_rss_mb"] > 100
    assert len(client_parts.search_runs([run.info.experiment_id])) == 1


def _tiny_tagger(optimizer):
    """A tiny CNN-CRF over two words, trained eagerly (these tests are about what fit does around the steps,
    and tracing a train step costs 2-3 s a model); its task and model."""
    from seqlab.data.vocab import PAD, UNK, Vocabulary
    from seqlab.model import build_tagger
    from seqlab.task import TaggingTask

    keras.utils.set_random_seed(0)
    task = TaggingTask("ner", Vocabulary([PAD, UNK, "a", "b"], [PAD, UNK, "a", "b"], ["O", "B-X", "I-X"]), "iob2")
    model = build_tagger(task, dict(dim=4, dropout=0.0, chars="none"), dict(name="cnn", layers=1, filters=4, kernel_size=3,
                         dropout=0.0, residual=False), dict(name="crf", constrained=True), seed=7, jit_compile=False)
    model.compile(optimizer=optimizer, run_eagerly=True)
    return task, model


def _fit_with_scores(model, task, sentences, batch, dev: list[dict], epochs, patience, on_score=None):
    """fit over `sentences` with a dev scorer that returns the given dicts in turn; returns (outcome, the logs
    each epoch ended with)."""
    from seqlab.training import BucketedBatches, DevScore, FitOptions, fit

    given, logged = iter(dev), []

    def score_dev():
        if on_score:
            on_score()
        return next(given)

    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logged.append(dict(logs)))
    outcome = fit(model, BucketedBatches(sentences, task, batch, seed=0), FitOptions(epochs, "val_entity_f1", patience),
                  [DevScore(score_dev), record])
    return outcome, logged


def _tiny_fit(ema, epochs=3):
    """A tiny CNN-CRF trained with SGD; returns (per-epoch losses, per-epoch (weights dev scored, the
    optimizer's averages) pairs, the model)."""
    from seqlab.data.corpus import Sentence
    from seqlab.training import make_optimizer

    task, model = _tiny_tagger(make_optimizer("sgd", 0.2, None, momentum=0.9, ema=ema))
    seen = []

    def look():
        averages = model.optimizer._model_variables_moving_average if ema else []
        seen.append(([np.array(v) for v in model.trainable_variables], [np.array(a) for a in averages]))

    sentences = [Sentence(("a", "b"), ("B-X", "I-X")), Sentence(("b", "a"), ("O", "O"))] * 4
    _, logged = _fit_with_scores(model, task, sentences, 2, [{"val_entity_f1": v} for v in (0.1, 0.9, 0.2)], epochs, 5,
                                 on_score=look)
    return [logs["loss"] for logs in logged], seen, model


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


def test_early_stopping_restores_the_best_epoch_and_the_dev_metric_is_in_every_epochs_logs():
    from seqlab.data.corpus import Sentence

    task, model = _tiny_tagger(keras.optimizers.SGD(0.1))
    assert model.features.seed == 7  # word dropout is seeded by the run's seed
    weights = []
    sentences = [Sentence(("a", "b"), ("B-X", "I-X")), Sentence(("b",), ("O",))] * 4
    outcome, logged = _fit_with_scores(model, task, sentences, 4, [{"val_entity_f1": v} for v in (0.1, 0.5, 0.3, 0.2, 0.9)],
                                       5, 2, on_score=lambda: weights.append([w.copy() for w in model.get_weights()]))
    assert [logs["val_entity_f1"] for logs in logged] == [0.1, 0.5, 0.3, 0.2]  # stopped after 2 epochs without a better one
    assert all("epoch_seconds" in logs and "dev_seconds" in logs for logs in logged)
    assert (outcome.best_epoch, outcome.best_score, outcome.epochs_run, outcome.nan_loss) == (2, 0.5, 4, False)
    for now, best in zip(model.get_weights(), weights[1]):
        np.testing.assert_array_equal(now, best)


def test_a_dev_metric_that_never_moves_lets_the_dev_loss_choose_the_epoch(caplog):
    """A dev split without entities scores F1 0 at every epoch: early stopping must not keep epoch 1. Ties on
    the metric go to the lower dev loss; a better metric always wins over a lower loss."""
    from seqlab.data.corpus import Sentence

    task, model = _tiny_tagger(keras.optimizers.SGD(0.1))
    sentences = [Sentence(("a", "b"), ("B-X", "I-X")), Sentence(("b",), ("O",))] * 4
    flat = [{"val_entity_f1": 0.0, "val_loss": loss} for loss in (9.0, 7.0, 5.0, 6.0, 6.5)]
    with caplog.at_level("INFO", logger="seqlab"):
        outcome, _ = _fit_with_scores(model, task, sentences, 4, flat, 5, 2)
    assert (outcome.best_epoch, outcome.epochs_run, outcome.chosen_by_loss) == (3, 5, True)
    assert "val_entity_f1 was 0.0000 at every epoch: the best epoch (3) was chosen by the dev loss" in caplog.text
    task, model = _tiny_tagger(keras.optimizers.SGD(0.1))
    mixed = [{"val_entity_f1": f1, "val_loss": loss} for f1, loss in ((0.2, 9.0), (0.5, 8.0), (0.4, 1.0), (0.5, 7.5))]
    outcome, _ = _fit_with_scores(model, task, sentences, 4, mixed, 4, 3)
    assert (outcome.best_epoch, outcome.chosen_by_loss) == (4, False)  # 0.5 again with a lower loss; 0.4 never wins


