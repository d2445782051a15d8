"""The fit loop: Keras' `model.fit` over length-bucketed batches, the dev score every epoch, early stopping.

    outcome = fit(model, batches, FitOptions(epochs=30, monitor="val_entity_f1", patience=5),
                  [DevScore(score_dev), *your_callbacks])

Callbacks run at each epoch's end in the order of their `stage` (then in the order given):

    AVERAGE_IN   with optimizer.ema: the weights' moving average goes into the model (fit adds it)
    SCORE        DevScore: the dev metric and dev loss into the epoch's logs; the caller's other scorers
    STOP         BestEpoch: early stopping on the dev metric, ties broken by the dev loss (fit adds it);
                 TerminateOnNaN
    REPORT       EpochReport: one line per epoch, `epoch_seconds` into the logs (fit adds it)
    OBSERVE      the default for the caller's callbacks: MLflow's per-epoch metrics, keras-tuner's,
                 the time limit; they see every entry above in the logs
    AVERAGE_OUT  the trained weights come back, and training goes on from them (fit adds it)
    SAVE         the checkpoint (trainer.checkpoint): the trained weights and early stopping's state
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable, Sequence

import keras
import numpy as np

from seqlab.runtime import interrupts

log = logging.getLogger("seqlab")


class Stage(IntEnum):
    AVERAGE_IN = 0
    SCORE = 10
    STOP = 20
    REPORT = 30
    OBSERVE = 40
    AVERAGE_OUT = 80
    SAVE = 90


def stage_of(callback) -> int:
    return int(getattr(callback, "stage", Stage.OBSERVE))


@dataclass(frozen=True)
class StopState:
    """Early stopping's state, saved with a checkpoint so that a resumed run stops where the uninterrupted
    one would have. best_epoch counts from 0, as Keras counts epochs."""

    best: float
    best_loss: float
    best_epoch: int
    wait: int
    best_weights: list | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FitOptions:
    """What a fit needs besides the model, the batches and the callbacks.

    monitor: the dev metric maximised (val_entity_f1, val_chunk_f1, val_accuracy); min_delta: a dev
    score must beat the best by more than this to count as better; progress: Keras' bar inside
    epochs (None: for epochs of more than PROGRESS_BAR_FROM batches); initial_epoch and resume:
    where a resumed run continues."""

    epochs: int
    monitor: str
    patience: int
    min_delta: float = 0.0
    progress: bool | None = None
    initial_epoch: int = 0
    resume: StopState | None = None


@dataclass
class Outcome:
    """How a fit ended. best_epoch counts from 1; best_score is -inf when no epoch was scored.
    chosen_by_loss: the dev metric never changed, so the dev loss chose the best epoch."""

    best_score: float
    best_epoch: int
    epochs_run: int
    nan_loss: bool
    chosen_by_loss: bool = False

    @property
    def scored(self) -> bool:
        return math.isfinite(self.best_score)


class DevScore(keras.callbacks.Callback):
    """After each epoch: `score_dev()` into the logs. It returns {monitor: score, "val_loss": loss, ...}
    (any other entries, e.g. dev_decode_seconds, go into the logs too), and `dev_seconds` is added.

    After a non-finite loss nothing is scored: the weights are broken, and early stopping keeps the
    best earlier epoch.
    """

    stage = Stage.SCORE

    def __init__(self, score_dev: Callable[[], dict]):
        super().__init__()
        self.score_dev = score_dev
        self.nan_loss = False

    def on_epoch_end(self, epoch, logs=None):
        interrupts.check()
        if logs is None:
            return
        if not math.isfinite(float(logs.get("loss", float("nan")))):
            self.nan_loss = True
            return
        started = time.perf_counter()
        logs.update({k: float(v) for k, v in self.score_dev().items()})
        logs["dev_seconds"] = time.perf_counter() - started


class BestEpoch(keras.callbacks.Callback):
    """Early stopping on the dev metric `monitor` (higher is better), ties broken by the lower dev loss.

    An epoch is better when its metric beats the best by more than `min_delta`, or when its metric is at
    least the best and its dev loss (`val_loss`) is lower: a dev metric that never moves (a dev split
    without entities, a model that predicts none yet) then still selects a sensible epoch instead of the
    first one. After `patience` epochs without a better one, training stops; at the end the best
    epoch's weights are restored. `start`: the state of a resumed run.
    """

    stage = Stage.STOP

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0, start: StopState | None = None):
        super().__init__()
        self.monitor, self.patience, self.min_delta, self.start = monitor, patience, min_delta, start
        self.values: list[float] = []

    def on_train_begin(self, logs=None):
        s = self.start
        self.best = s.best if s else -math.inf
        self.best_loss = s.best_loss if s else math.inf
        self.best_epoch = s.best_epoch if s else 0
        self.wait = s.wait if s else 0
        self.best_weights = s.best_weights if s else None
        self.stopped_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            return  # a NaN epoch: nothing scored
        value, loss = float(logs[self.monitor]), float(logs.get("val_loss", math.inf))
        self.values.append(value)
        if value > self.best + self.min_delta or (value >= self.best and loss < self.best_loss):
            self.best, self.best_loss, self.best_epoch, self.wait = value, loss, epoch, 0
            self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def state(self) -> StopState:
        return StopState(float(self.best), float(self.best_loss), int(self.best_epoch), int(self.wait), self.best_weights)

    @property
    def metric_constant(self) -> bool:
        """True when this fit scored at least two epochs and the metric never changed."""
        return len(self.values) >= 2 and max(self.values) == min(self.values)


class _TerminateOnNaN(keras.callbacks.TerminateOnNaN):
    stage = Stage.STOP


class EpochReport(keras.callbacks.Callback):
    """One line per epoch (loss, dev metric, best so far, seconds); `epoch_seconds` (training and dev
    scoring) into the logs."""

    stage = Stage.REPORT

    def __init__(self, monitor: str, stopper: BestEpoch, epochs: int):
        super().__init__()
        self.monitor, self.stopper, self.epochs = monitor, stopper, epochs
        self.epochs_run = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.epochs_run += 1
        logs["epoch_seconds"] = time.perf_counter() - self.started
        loss = float(logs.get("loss", float("nan")))
        if self.monitor not in logs:
            log.warning("epoch %d: loss is %s; stopping and keeping the best epoch so far", epoch + 1, loss)
            return
        dev_loss = f"  val_loss {logs['val_loss']:.4f}" if "val_loss" in logs else ""
        log.info("epoch %d/%d  loss %.4f  %s %.4f%s  (best %.4f at epoch %d)  %.1fs", epoch + 1, self.epochs, loss,
                 self.monitor, float(logs[self.monitor]), dev_loss, self.stopper.best, self.stopper.best_epoch + 1,
                 logs["epoch_seconds"])
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

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """Callbacks that swap the average in (stage AVERAGE_IN) and the trained weights back (AVERAGE_OUT)."""
        return [_AtEpochEnd(self.swap_in, Stage.AVERAGE_IN), _AtEpochEnd(self.swap_out, Stage.AVERAGE_OUT)]


class _AtEpochEnd(keras.callbacks.Callback):
    """Calls `action(model)` at the end of every epoch, at `stage`."""

    def __init__(self, action: Callable[[keras.Model], None], stage: Stage):
        super().__init__()
        self.action, self.stage = action, stage

    def on_epoch_end(self, epoch, logs=None):
        self.action(self.model)


PROGRESS_BAR_FROM = 500  # batches per epoch from which `trainer.progress=null` shows Keras' bar


def show_progress(progress: bool | None, batches_per_epoch: int) -> bool:
    """trainer.progress: true/false, or null (auto): a bar inside epochs of more than 500 batches."""
    return batches_per_epoch > PROGRESS_BAR_FROM if progress is None else bool(progress)


def fit(model: keras.Model, batches, options: FitOptions, callbacks: Sequence[keras.callbacks.Callback] = ()) -> Outcome:
    """Train `model` on `batches` (a seqlab.training.batches.BucketedBatches) as `options` say; the best
    epoch's weights are restored at the end.

    `callbacks` run in the order of their `stage` (module docstring); one with a `watch(stopper)` method
    is handed the early-stopping callback first (the checkpoint saves its state). With the optimizer's
    `use_ema` (optimizer.ema) every score is the moving average's (WeightAverage).
    """
    from seqlab.model.backend import as_dataset

    stopper = BestEpoch(options.monitor, options.patience, options.min_delta, options.resume)
    report = EpochReport(options.monitor, stopper, options.epochs)
    own = [stopper, _TerminateOnNaN(), report]
    if model.optimizer.use_ema:
        own += WeightAverage().callbacks()
    for callback in callbacks:
        if hasattr(callback, "watch"):
            callback.watch(stopper)
    ordered = sorted([*own, *callbacks], key=stage_of)  # stable: the caller's order within a stage
    batches.start_epoch(options.initial_epoch)
    if model.optimizer is not None and not model.optimizer.built:
        # Keras' TensorFlow trainer builds the optimizer inside the first trace of the train step; a
        # tf.function that creates variables is traced twice, so building it here saves one whole trace
        # of the step (about 5 s of a tiny run on 2 cores).
        model.optimizer.build(model.trainable_variables)
    verbose = 1 if show_progress(options.progress, len(batches)) else 0
    model.fit(as_dataset(batches, xla=bool(model.jit_compile)), epochs=options.epochs,
              initial_epoch=options.initial_epoch, verbose=verbose, shuffle=False, callbacks=ordered)
    scored = stopper.best_weights is not None
    nan = any(getattr(c, "nan_loss", False) for c in callbacks)
    if scored and stopper.metric_constant:
        log.info("%s was %.4f at every epoch: the best epoch (%d) was chosen by the dev loss", options.monitor,
                 stopper.best, stopper.best_epoch + 1)
    return Outcome(float(stopper.best) if scored else float("-inf"), stopper.best_epoch + 1 if scored else 0,
                   report.epochs_run, nan, scored and stopper.metric_constant)

