"""Continue a training run where it stopped: `trainer.checkpoint=DIR trainer.resume=true`.

With `trainer.checkpoint=DIR`, every epoch ends by writing into DIR:

    epoch-0007/model.weights.h5      the weights
    epoch-0007/seeds.npz             the dropout layers' random states (Keras does not save them)
    epoch-0007/optimizer.npz         the optimizer's variables (iterations, momenta, ...)
    epoch-0007/best.npz              the best epoch's weights so far (early stopping restores them)
    state.json                       written last, atomically: the epoch, the MLflow run id, early
                                     stopping's best / wait / best epoch, seconds trained, and the
                                     config it belongs to

The batches of epoch e are grouped by a generator seeded with (seed, e)
(seqlab.training.batches.BucketedBatches), so no random state needs saving.

A crash, kill -9 or power cut mid-epoch leaves the previous epoch's checkpoint
whole. `trainer.resume=true` rebuilds the model from the same config, loads the
last checkpoint, reopens the same MLflow run and trains on from the next epoch:
the epochs it adds are the ones an uninterrupted run would have trained (tested).
Without a checkpoint in DIR yet, it starts from scratch, so one command can be
rerun until the run is done.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import math
import warnings

import keras
import numpy as np

from seqlab.errors import ConfigError
from seqlab.training.loop import Stage

log = logging.getLogger(__name__)

STATE = "state.json"
# Keys that may change between the first run and its resumption; every other key must match.
MAY_CHANGE = ("trainer.epochs", "trainer.resume", "trainer.patience", "trainer.progress", "trainer.threads",
              "trainer.checkpoint", "trainer.max_minutes", "trainer.test_each_epoch", "trainer.jit_compile",
              "tracking.system_metrics")


@dataclass
class State:
    """What a resumed run needs besides the weights. epoch: epochs completed (the next one's index)."""

    epoch: int
    run_id: str
    best: float
    best_epoch: int  # counted from 0, as Keras counts epochs
    wait: int
    train_seconds: float
    config: dict = field(default_factory=dict)
    folder: str = ""
    best_loss: float = math.inf  # the best epoch's dev loss (early stopping's tie-break; absent before 0.3)


def load_state(folder: str | Path, config: dict) -> State | None:
    """The last checkpoint's state in `folder` (trainer.checkpoint), or None when there is none yet.
    ConfigError when it belongs to another config: `config` is `config_of` this run's flattened config."""
    folder = Path(folder)
    path = folder / STATE
    if not path.exists():
        log.info("trainer.resume: no checkpoint in %s yet; starting from scratch", folder)
        return None
    try:
        state = State(**json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not a seqlab checkpoint state ({e})") from None
    now = config
    for key in sorted(set(now) | set(state.config)):
        if now.get(key) != state.config.get(key):
            raise ConfigError(f"trainer.resume: {path} was written with {key}={state.config.get(key)!r}, this run has "
                              f"{key}={now.get(key)!r}; resume with the same config (only {', '.join(MAY_CHANGE)} may change)")
    return state


def restore(model: keras.Model, state: State, checkpoint_dir: str) -> list[np.ndarray]:
    """Load the weights and optimizer of `state` into a built, compiled `model`. Returns the best weights."""
    folder = Path(checkpoint_dir) / state.folder
    with warnings.catch_warnings():  # the optimizer is restored below, from optimizer.npz
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(folder / "model.weights.h5")
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    saved = np.load(folder / "optimizer.npz")
    if len(saved.files) != len(optimizer.variables):
        raise ConfigError(f"{folder}: the optimizer state has {len(saved.files)} variables, this optimizer "
                          f"{len(optimizer.variables)}")
    for i, variable in enumerate(optimizer.variables):
        variable.assign(saved[f"v{i}"])
    seeds, saved_seeds = _seed_states(model), np.load(folder / "seeds.npz")
    for i, variable in enumerate(seeds):
        variable.assign(saved_seeds[f"s{i}"])
    best = np.load(folder / "best.npz")
    return [best[f"w{i}"] for i in range(len(best.files))]


class Checkpoint(keras.callbacks.Callback):
    """After every epoch: weights, optimizer, early stopping's state and the batch order into `directory`.

    Runs last (stage SAVE: early stopping's state is up to date, and the trained weights, not their
    average, are in the model). `clock()`: seconds trained in this process.
    """

    stage = Stage.SAVE

    def __init__(self, directory: str, run_id: str, config: dict, seconds_before: float = 0.0, clock=None):
        super().__init__()
        self.directory, self.run_id, self.config = Path(directory), run_id, config
        self.seconds_before = seconds_before
        self.clock = clock  # () -> seconds trained in this process so far
        self.stopper = None

    def watch(self, stopper) -> None:
        """Save `stopper`'s state (seqlab.training.loop.BestEpoch) with every epoch; fit calls it."""
        self.stopper = stopper

    def on_epoch_end(self, epoch, logs=None):
        if self.stopper.best_weights is None:
            return  # no scored epoch yet (a NaN loss in the first one): nothing worth resuming
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}"
        tmp = self.directory / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self.model.save_weights(tmp / "model.weights.h5")
            np.savez(tmp / "optimizer.npz", **{f"v{i}": np.asarray(v) for i, v in enumerate(self.model.optimizer.variables)})
            np.savez(tmp / "seeds.npz", **{f"s{i}": np.asarray(v) for i, v in enumerate(_seed_states(self.model))})
            np.savez(tmp / "best.npz", **{f"w{i}": w for i, w in enumerate(self.stopper.best_weights)})
        except BaseException:  # a full disk, an interrupt: nothing half-written stays; the last checkpoint counts
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(self.directory / name, ignore_errors=True)
        os.replace(tmp, self.directory / name)
        seconds = self.seconds_before + (self.clock() if self.clock else 0.0)
        stop = self.stopper.state()
        state = State(epoch + 1, self.run_id, stop.best, stop.best_epoch, stop.wait, seconds, self.config, name,
                      stop.best_loss)
        tmp_state = self.directory / f".{STATE}.tmp"
        tmp_state.write_text(json.dumps(asdict(state), default=_plain))
        os.replace(tmp_state, self.directory / STATE)  # the checkpoint counts from here on
        for old in self.directory.glob("epoch-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)


def _seed_states(model: keras.Model) -> list:
    """The random-state variables of the model's dropout layers, in build order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _plain(value):
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"cannot write {type(value).__name__} to a checkpoint state")


def config_of(flat: dict) -> dict:
    """What `State.config` holds for a run: its resolved config (flattened: seqlab.config.flatten) without
    the keys that may change on resumption, as dotted keys -> JSON-safe values."""
    kept = {k: v for k, v in flat.items() if k not in MAY_CHANGE and not k.startswith("hydra")}
    return json.loads(json.dumps(kept, default=str))
