"""Training: length-bucketed batches, the task's dev metric every epoch, Keras' early stopping on it.

The callbacks, in order:
    (schedule)     a learning-rate schedule (optimizer.lr_decay)
    (average in)   with optimizer.ema: the weights' moving average replaces the weights for scoring
    DevScore       puts the dev metric into the epoch's logs (`val_entity_f1`, `val_accuracy`, ...)
    EarlyStopping  Keras' own: monitor=<that metric>, mode="max", restore_best_weights=True
    TerminateOnNaN Keras' own: stops at the first non-finite batch loss
    EpochReport    one line per epoch, and the epoch's metrics to MLflow
    (callbacks)    the caller's: keras-tuner's, test scoring per epoch, the time limit
    (average out)  the trained weights come back, and training goes on from them
    (checkpoint)   trainer.checkpoint: what a resumed run needs
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from seqlab import choices, interrupts
from seqlab.data.corpus import Sentence
from seqlab.data.vocab import UNK_ID, length_batches
from seqlab.model.backend import as_dataset

log = logging.getLogger(__name__)


class BucketedBatches(keras.utils.PyDataset):
    """(inputs, tags) batches of sentences of similar length, regrouped every epoch.

    inputs: {"words": int32 [B, T], "chars": int32 [B, T, W], "casing": int32 [B, T]}; tags: int32 [B, T].
    T and W vary from batch to batch. `sentences` carry their tags in the task's training scheme.
    Bucketing pads far less than random batches (padding ratio 1.03 against 1.69 on WNUT-16).
    `singleton_unk`: each epoch, every occurrence of a word seen once in `sentences` is replaced by
    UNK with this probability (Lample et al. 2016: 0.5), so that the UNK embedding learns from the
    rare words that look most like the unseen words of dev and test.
    Epoch e's grouping and replacements depend on (seed, e) only, so a resumed run sees the batches
    it would have seen.
    """

    def __init__(self, sentences: list[Sentence], task, batch_size: int, seed: int, singleton_unk: float = 0.0):
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        self.lengths = [len(s) for s in sentences]
        self.encoded = task.encode_corpus([s.tokens for s in sentences], [s.tags for s in sentences])  # once
        self.singleton_unk = float(singleton_unk)
        words = self.encoded.words  # int32 [N tokens]
        self.singletons = (np.bincount(words)[words] == 1) & (words > UNK_ID)  # bool [N tokens]
        self.pad = None  # set by seqlab.model.backend.as_dataset where shapes must come in few sizes
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        """Group the sentences for epoch `epoch` (counted from 0), and draw its singleton replacements."""
        self.epoch = epoch
        self.batches = length_batches(self.lengths, self.batch_size, np.random.default_rng([self.seed, epoch]))
        self.corpus = self.encoded
        if self.singleton_unk > 0:
            drop = self.singletons & (np.random.default_rng([self.seed, epoch, 1]).random(len(self.singletons))
                                      < self.singleton_unk)
            self.corpus = dataclasses.replace(self.encoded, words=np.where(drop, UNK_ID, self.encoded.words))

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        x, y = self.corpus.batch(self.batches[i])
        return (x, y) if self.pad is None else self.pad(x, y)

    def on_epoch_end(self) -> None:
        self.start_epoch(self.epoch + 1)


class DevScore(keras.callbacks.Callback):
    """After each epoch, `score_dev()` (the current weights' dev score) goes into the logs as `monitor`,
    with `dev_seconds`. `score_dev` may return (score, {other log entries}) instead, e.g. the decoding time.

    After a non-finite loss nothing is scored: the weights are broken, and Keras' EarlyStopping
    then keeps the best earlier epoch.
    """

    def __init__(self, score_dev: Callable[[], float], monitor: str):
        super().__init__()
        self.score_dev, self.monitor = score_dev, monitor
        self.nan_loss = False

    def on_epoch_end(self, epoch, logs=None):
        interrupts.check()
        if logs is None:
            return
        if not math.isfinite(float(logs.get("loss", float("nan")))):
            self.nan_loss = True
            return
        started = time.perf_counter()
        result = self.score_dev()
        value, extra = result if isinstance(result, tuple) else (result, {})
        logs[self.monitor] = float(value)
        logs.update(extra)
        logs["dev_seconds"] = time.perf_counter() - started


class EpochReport(keras.callbacks.Callback):
    """One line per epoch (loss, dev metric, best so far, seconds) and `on_epoch(epoch, metrics)`,
    epoch counted from 1, e.g. to log the metrics to MLflow: loss, the dev metric, epoch_seconds
    (training and dev scoring), dev_seconds (decoding and scoring dev), dev_decode_seconds (decoding
    only), and learning_rate under a schedule."""

    def __init__(self, monitor: str, stopper: keras.callbacks.EarlyStopping,
                 on_epoch: Callable[[int, dict], None] | None = None, epochs: int | None = None):
        super().__init__()
        self.monitor, self.stopper, self.on_epoch, self.epochs = monitor, stopper, on_epoch, epochs
        self.epochs_run = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epochs_run += 1
        loss = float(logs.get("loss", float("nan")))
        if self.monitor not in logs:
            log.warning("epoch %d: loss is %s; stopping and keeping the best epoch so far", epoch + 1, loss)
            return
        value = float(logs[self.monitor])
        best, best_epoch = self.stopper.best, self.stopper.best_epoch + 1
        log.info("epoch %d/%s  loss %.4f  %s %.4f  (best %.4f at epoch %d)  %.1fs", epoch + 1, self.epochs or "?",
                 loss, self.monitor, value, best, best_epoch, time.perf_counter() - self.started)
        if self.on_epoch:
            metrics = {"loss": loss, self.monitor: value, "epoch_seconds": time.perf_counter() - self.started}
            for key in ("dev_seconds", "dev_decode_seconds"):
                if key in logs:
                    metrics[key] = float(logs[key])
            if "learning_rate" in logs:  # set by a schedule (optimizer.lr_decay)
                metrics["learning_rate"] = float(logs["learning_rate"])
            self.on_epoch(epoch + 1, metrics)
        if self.model.stop_training and self.stopper.stopped_epoch == epoch:
            log.info("early stopping: no better %s for %d epochs", self.monitor, self.stopper.patience)


class TimeLimit(keras.callbacks.Callback):
    """Stop training after the epoch during which `seconds` of training have passed (trainer.max_minutes),
    counting `seconds_before` from earlier sessions of a resumed run. The best epoch's weights are kept."""

    def __init__(self, seconds: float, seconds_before: float = 0.0):
        super().__init__()
        self.seconds, self.seconds_before = seconds, seconds_before

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        spent = self.seconds_before + time.perf_counter() - self.started
        if spent >= self.seconds and not self.model.stop_training:
            log.info("trainer.max_minutes: %.1f minutes of training reached after epoch %d; stopping", spent / 60, epoch + 1)
            self.model.stop_training = True


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, optionally starting from a saved state (best score, its epoch counted from 0,
    epochs waited, the best weights) instead of from nothing: a resumed run stops where the
    uninterrupted one would have."""

    def __init__(self, *args, start=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.start = start  # (best, best_epoch, wait, best_weights) or None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.start is not None:
            self.best, self.best_epoch, self.wait, self.best_weights = self.start


@dataclass
class Outcome:
    """How a fit ended. best_epoch counts from 1; best_score is -inf when no epoch was scored."""

    best_score: float
    best_epoch: int
    epochs_run: int
    nan_loss: bool

    @property
    def scored(self) -> bool:
        return math.isfinite(self.best_score)


def make_optimizer(name: str, lr: float, clipnorm: float | None, momentum: float = 0.0,
                   weight_decay: float | None = None, ema: float | None = None) -> keras.optimizers.Optimizer:
    """The `optimizer` config's choice (seqlab.choices.OPTIMIZERS) with its learning rate, clipping and
    weight decay (w -= lr * weight_decay * w each step: for plain SGD the same as PyTorch's L2 `weight_decay`).
    `ema`: also keep a moving average of the weights, a <- ema * a + (1 - ema) * w after every step
    (Keras' `use_ema`; `WeightAverage` scores it)."""
    kind = choices.choose(choices.OPTIMIZERS, name, "optimizer.name").load()
    extra = {"momentum": momentum} if name == "sgd" else {}
    if ema:
        extra.update(use_ema=True, ema_momentum=ema)
    return kind(learning_rate=lr, clipnorm=clipnorm, weight_decay=weight_decay or None, **extra)


class WeightAverage:
    """Swaps the optimizer's moving average of the trainable weights (optimizer.ema) into the model and back.

    Each epoch ends with the average in the model while the dev (and test) scores are taken, early stopping
    keeps it as the best weights, and then the trained weights come back for the next epoch. At the end of
    fit, Keras writes the last average into the model and early stopping restores the best epoch's average:
    the model that is evaluated, saved and logged is always an average.
    """

    def __init__(self):
        self.trained: list[np.ndarray] | None = None

    def swap_in(self, model: keras.Model) -> None:
        optimizer = model.optimizer  # Keras keeps the averages in the order of the variables it was built for
        self.trained = [np.array(v) for v in optimizer._trainable_variables]
        for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            variable.assign(average)

    def swap_out(self, model: keras.Model) -> None:
        if self.trained is not None:
            for variable, value in zip(model.optimizer._trainable_variables, self.trained):
                variable.assign(value)
            self.trained = None

    def callbacks(self) -> tuple[keras.callbacks.Callback, keras.callbacks.Callback]:
        """(in, out): callbacks that swap the average in, and the trained weights back, at the end of an epoch."""
        return _AtEpochEnd(self.swap_in), _AtEpochEnd(self.swap_out)


class _AtEpochEnd(keras.callbacks.Callback):
    """Calls `action(model)` at the end of every epoch."""

    def __init__(self, action: Callable[[keras.Model], None]):
        super().__init__()
        self.action = action

    def on_epoch_end(self, epoch, logs=None):
        self.action(self.model)


def inverse_time_decay(lr: float, decay: float) -> keras.callbacks.LearningRateScheduler:
    """Set the learning rate of epoch e (counted from 0) to lr / (1 + decay * e), as NCRF++ does."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, _: lr / (1.0 + decay * epoch))


PROGRESS_BAR_FROM = 500  # batches per epoch from which `trainer.progress=null` shows Keras' bar


def show_progress(progress: bool | None, batches_per_epoch: int) -> bool:
    """trainer.progress: true/false, or null (auto): a bar inside epochs of more than 500 batches."""
    return batches_per_epoch > PROGRESS_BAR_FROM if progress is None else bool(progress)


def fit(model, batches: BucketedBatches, epochs: int, score_dev: Callable[[], float], monitor: str,
        patience: int, min_delta: float = 0.0, on_epoch: Callable[[int, dict], None] | None = None,
        callbacks: list | None = None, initial_epoch: int = 0, progress: bool | None = None,
        before: list | None = None, resume=None, checkpoint=None) -> Outcome:
    """Keras' fit loop with early stopping on `monitor`; the best epoch's weights are restored at the end.

    `before` (e.g. a learning-rate schedule) run before seqlab's callbacks; `callbacks` (e.g. keras-tuner's,
    test scoring) after them, so they see `monitor` in the logs. `resume`: early stopping's saved state
    (best, best epoch from 0, wait, best weights) when training continues at `initial_epoch`.
    `checkpoint`: a function of the early-stopping callback that returns the callback saving the
    epoch (seqlab.checkpoint.Checkpoint.watching); it runs last, with the trained (not averaged) weights.
    With the optimizer's `use_ema` (optimizer.ema) every score is the moving average's (WeightAverage).
    """
    stopper = ResumableEarlyStopping(monitor=monitor, mode="max", patience=patience, min_delta=min_delta,
                                     restore_best_weights=True, start=resume)
    average_in, average_out = [], []
    if model.optimizer.use_ema:
        swap_in, swap_out = WeightAverage().callbacks()
        average_in, average_out = [swap_in], [swap_out]
    batches.start_epoch(initial_epoch)
    dev, report = DevScore(score_dev, monitor), EpochReport(monitor, stopper, on_epoch, epochs)
    verbose = 1 if show_progress(progress, len(batches)) else 0
    with warnings.catch_warnings():  # after a NaN epoch the monitor is missing on purpose
        warnings.filterwarnings("ignore", message="Early stopping conditioned on metric")
        model.fit(as_dataset(batches, xla=bool(model.jit_compile)), epochs=epochs, initial_epoch=initial_epoch, verbose=verbose, shuffle=False,
                  callbacks=[*(before or []), *average_in, dev, stopper, keras.callbacks.TerminateOnNaN(), report,
                             *(callbacks or []), *average_out, *([checkpoint(stopper)] if checkpoint else [])])
    scored = stopper.best_weights is not None
    return Outcome(float(stopper.best) if scored else float("-inf"), stopper.best_epoch + 1 if scored else 0,
                   report.epochs_run, dev.nan_loss)
