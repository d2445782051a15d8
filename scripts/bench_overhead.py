"""seqlab's training epoch against a bare Keras `model.fit` of the same model on the same batches.

    python scripts/bench_overhead.py                       # CoNLL-2003 from ../shared, else the embedded data
    python scripts/bench_overhead.py --model default --repeats 3

The model is built by seqlab's pipeline from `--model`: `words_only` (word
embedding + BiLSTM + softmax, the issue's probe) or `default` (the main
command's BiLSTM-CRF with characters). Both sides get the same, already
traced model kind, the same seed and the same length-bucketed batches:

    bare    model.fit(tf.data.Dataset.from_generator(<the epoch's batches, encoded beforehand>))
            with no callbacks, verbose=0
    seqlab  seqlab.training.fit with the pipeline's callbacks: batches encoded on the fly, the dev score
            and dev loss, early stopping, TerminateOnNaN, the epoch line and the MLflow metrics (a real
            SQLite store)

Each side trains `--epochs` epochs in one fit (the first one traces and is
left out), in `--rounds` rounds that alternate bare and seqlab; the table gives
the medians of the epochs. seqlab's dev scoring is timed on its own and
reported apart: "seqlab train" is its epoch without it. The batches are
encoded once per run (seqlab.data.vocab.EncodedCorpus), before the first epoch.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from seqlab import tracking  # noqa: E402
from seqlab.config import compose  # noqa: E402
from seqlab.jobs.pipeline import prepare, prepare_data, training_batches, training_callbacks  # noqa: E402
from seqlab.model.backend import input_signature  # noqa: E402
from seqlab.testing import conll2003_overrides  # noqa: E402
from seqlab.training import FitOptions, fit  # noqa: E402

MODELS = {
    "words_only": ["+encoder=bilstm", "words=words_only", "head=softmax"],
    "default": ["+encoder=bilstm"],
}


class EpochTimes(keras.callbacks.Callback):
    """Each epoch's seconds, and its dev scoring's (`dev_seconds`, which seqlab's DevScore puts in the logs)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.dev_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)
        self.dev_seconds.append(float((logs or {}).get("dev_seconds", 0.0)))


def bare_fit(model, encoded, epochs: int) -> list[float]:
    """Epoch seconds of a bare fit over the pre-encoded batches (the same batches every epoch)."""
    import tensorflow as tf

    signature = (input_signature(), tf.TensorSpec((None, None), tf.int32))
    dataset = tf.data.Dataset.from_generator(lambda: iter(encoded), output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(encoded))).prefetch(2)
    timer = EpochTimes()
    model.fit(dataset, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer])
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="words_only")
    parser.add_argument("--epochs", type=int, default=3, help="per fit; the first one is left out")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="training sentences (default: all)")
    parser.add_argument("--smoke", action="store_true", help="40 sentences, 2 epochs, 1 round: does it still run?")
    args = parser.parse_args()
    if args.smoke:
        args.limit, args.epochs, args.rounds = 40, 2, 1
    store = tempfile.mkdtemp(prefix="bench_overhead_")
    overrides = [*MODELS[args.model], *conll2003_overrides(), f"tracking.uri=sqlite:///{store}/mlflow.db",
                 f"tracking.artifact_location={store}/mlruns", "trainer.patience=100"]
    if args.limit:
        overrides.append(f"data.limit={args.limit}")
    cfg = compose(overrides)
    data = prepare_data(cfg.data, cfg.task.name)
    model = prepare(cfg, data).model
    batches = training_batches(model, data, cfg.trainer.batch_size, cfg.seed, 0.0)
    encoded = [batches[i] for i in range(len(batches))]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; keras {keras.__version__}; model {args.model} "
          f"({' '.join(MODELS[args.model])}); {len(data.train)} training sentences in {len(encoded)} batches")
    bare, seqlab, seqlab_train, setup = [], [], [], []
    for r in range(args.rounds):
        bare += bare_fit(prepare(cfg, data).model, encoded, args.epochs)[1:]
        model = prepare(cfg, data).model
        timer = EpochTimes()
        with tracking.training_run(cfg.tracking, {"script": "bench_overhead"}):
            start = time.perf_counter()
            callbacks = [*training_callbacks(model, data, cfg.trainer, cfg.optimizer.lr, 0.0),
                         tracking.epoch_metrics(model.task.monitor), timer]
            fit(model, training_batches(model, data, cfg.trainer.batch_size, cfg.seed, 0.0),
                FitOptions(args.epochs, model.task.monitor, patience=100), callbacks)
            total = time.perf_counter() - start
        # the timer runs after the dev score: its epoch includes the dev scoring
        setup.append(total - sum(timer.seconds))
        seqlab += timer.seconds[1:]
        dev_seconds = timer.dev_seconds
        seqlab_train += [e - d for e, d in zip(timer.seconds[1:], dev_seconds[1:])]
        print(f"round {r + 1}: bare epochs {' '.join(f'{x:.1f}' for x in bare[-(args.epochs - 1):])} s; seqlab epochs "
              f"{' '.join(f'{x:.1f}' for x in timer.seconds[1:])} s (dev scoring "
              f"{' '.join(f'{x:.1f}' for x in dev_seconds[1:])} s); seqlab outside epochs {setup[-1]:.1f} s", flush=True)
    b, s, t = (statistics.median(x) for x in (bare, seqlab, seqlab_train))
    print()
    print("| bare Keras fit (s/epoch) | seqlab epoch (s) | of which dev scoring (s) | seqlab train (s) | seqlab train / bare "
          "| seqlab outside epochs (s/run) |")
    print("|---|---|---|---|---|---|")
    print(f"| {b:.2f} | {s:.2f} | {s - t:.2f} | {t:.2f} | {t / b:.3f}x | {statistics.median(setup):.1f} |")


if __name__ == "__main__":
    main()
