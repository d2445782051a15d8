"""Training: length-bucketed batches, dev entity F1 every epoch, early stopping on it."""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import keras
import numpy as np

from seqlab import interrupts
from seqlab.data.corpus import Sentence
from seqlab.data.vocab import Vocabulary, length_batches
from seqlab.model import input_signature

log = logging.getLogger(__name__)


class BucketedBatches:
    """(inputs, tags) batches of sentences of similar length, regrouped every epoch.

    inputs: {"words": int32 [B, T], "chars": int32 [B, T, W], "casing": int32 [B, T]}; tags: int32 [B, T].
    T and W vary from batch to batch.
    """

    def __init__(self, sentences: list[Sentence], vocab: Vocabulary, batch_size: int, seed: int):
        self.sentences, self.vocab, self.batch_size = sentences, vocab, batch_size
        self.rng = np.random.default_rng(seed)
        self.batches = length_batches([len(s) for s in sentences], batch_size, self.rng)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        batch = [self.sentences[j] for j in self.batches[i]]
        x = self.vocab.encode_tokens([s.tokens for s in batch])
        return x, self.vocab.encode_tags([s.tags for s in batch], x["words"].shape[1])

    def on_epoch_end(self) -> None:
        self.batches = length_batches([len(s) for s in self.sentences], self.batch_size, self.rng)


class DevF1EarlyStopping(keras.callbacks.Callback):
    """Scores dev entity F1 after every epoch, puts it in the logs as `val_entity_f1`,
    keeps the best weights, stops after `patience` epochs without improvement,
    and restores the best weights when training ends.

    `score_dev()` returns the dev entity F1 of the current weights; `on_epoch(epoch, metrics)`
    receives the epoch's metrics (epoch counted from 1), e.g. to log them to MLflow.
    """

    def __init__(self, score_dev: Callable[[], float], patience: int,
                 on_epoch: Callable[[int, dict], None] | None = None, epochs: int | None = None):
        super().__init__()
        self.score_dev, self.patience, self.on_epoch, self.epochs = score_dev, patience, on_epoch, epochs
        self.best_f1, self.best_epoch, self.best_weights = -1.0, 0, None
        self.nan_loss = False
        self.epochs_run = 0

    def on_train_begin(self, logs=None):
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        if self.first_epoch is None:
            self.first_epoch = epoch  # > 0 when a Hyperband round continues a model

    def on_epoch_end(self, epoch, logs=None):
        interrupts.check()
        logs = logs if logs is not None else {}
        self.epochs_run += 1
        loss = float(logs.get("loss", float("nan")))
        if not math.isfinite(loss):
            self.nan_loss = True
            self.model.stop_training = True
            log.warning("epoch %d: loss is %s; stopping and keeping the best epoch so far", epoch + 1, loss)
            return
        f1 = float(self.score_dev())
        logs["val_entity_f1"] = f1
        if f1 > self.best_f1:
            self.best_f1, self.best_epoch = f1, epoch + 1
            self.best_weights = self.model.get_weights()
        log.info(
            "epoch %d/%s  loss %.4f  dev entity F1 %.4f  (best %.4f at epoch %d)  %.1fs",
            epoch + 1, self.epochs or "?", loss, f1, self.best_f1, self.best_epoch, time.perf_counter() - self.started,
        )
        if self.on_epoch:
            self.on_epoch(epoch + 1, {"loss": loss, "val_entity_f1": f1})
        if epoch + 1 - max(self.best_epoch, self.first_epoch) >= self.patience:
            log.info("early stopping: no better dev entity F1 for %d epochs", self.patience)
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def make_optimizer(name: str, lr: float, clipnorm: float | None, momentum: float = 0.0) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, clipnorm=clipnorm)
    kinds = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    return kinds[name](learning_rate=lr, clipnorm=clipnorm)


def as_dataset(batches: BucketedBatches):
    """A tf.data pipeline over `batches` with variable T and W (one trace, no retracing).

    Each pass over it is one epoch; the batches are regrouped after every pass.
    """
    import tensorflow as tf

    signature = (input_signature(), tf.TensorSpec((None, None), tf.int32))  # inputs, tags [B, T]

    def epoch():
        for i in range(len(batches)):
            yield batches[i]
        batches.on_epoch_end()

    dataset = tf.data.Dataset.from_generator(epoch, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)


PROGRESS_BAR_FROM = 500  # batches per epoch from which `trainer.progress=null` shows Keras' bar


def show_progress(progress: bool | None, batches_per_epoch: int) -> bool:
    """trainer.progress: true/false, or null (auto): a bar inside epochs of more than 500 batches."""
    return batches_per_epoch > PROGRESS_BAR_FROM if progress is None else bool(progress)


def fit(model, batches: BucketedBatches, epochs: int, callbacks: list, initial_epoch: int = 0,
        progress: bool | None = None) -> keras.callbacks.History:
    """Run Keras' fit loop; the callbacks report one line per epoch, Keras' bar shows progress inside it."""
    verbose = 1 if show_progress(progress, len(batches)) else 0
    return model.fit(as_dataset(batches), epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                     verbose=verbose, shuffle=False)
