"""seqlab's training epoch against a bare Keras `model.fit` of the same model on the same batches.

    python scripts/bench_overhead.py                       # CoNLL-2003 from ../shared, else the embedded data
    python scripts/bench_overhead.py --model default --repeats 3

The model is built by seqlab's pipeline from `--model`: `words_only` (word
embedding + BiLSTM + softmax, the issue's probe) or `default` (the main
command's BiLSTM-CRF with characters). Both sides get the same, already
traced model kind, the same seed and the same length-bucketed batches:

    bare    model.fit(tf.data.Dataset.from_generator(<the epoch's batches, encoded beforehand>))
            with no callbacks, verbose=0
    seqlab  seqlab.pipeline.fit_model for one epoch: batches encoded on the fly, the dev score,
            early stopping, TerminateOnNaN, the epoch line and the MLflow metrics (a real SQLite store)

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
import mlflow  # noqa: E402

from seqlab import pipeline  # noqa: E402
from seqlab.compose import compose  # noqa: E402
from seqlab.data.corpus import Sentence  # noqa: E402
from seqlab.model.backend import input_signature  # noqa: E402
from seqlab.testing import conll2003_overrides  # noqa: E402
from seqlab.training import BucketedBatches  # noqa: E402

MODELS = {
    "words_only": ["+encoder=bilstm", "words=words_only", "head=softmax"],
    "default": ["+encoder=bilstm"],
}


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


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
    args = parser.parse_args()
    store = tempfile.mkdtemp(prefix="bench_overhead_")
    overrides = [*MODELS[args.model], *conll2003_overrides(), f"tracking.uri=sqlite:///{store}/mlflow.db",
                 f"tracking.artifact_location={store}/mlruns", "trainer.patience=100"]
    if args.limit:
        overrides.append(f"data.limit={args.limit}")
    cfg = compose(overrides)
    data = pipeline.prepare_data(cfg)
    task = pipeline.build(cfg, data).task
    train = [Sentence(s.tokens, tuple(task.to_training(s.tags))) for s in data.train]
    batches = BucketedBatches(train, task, cfg.trainer.batch_size, cfg.seed)
    encoded = [batches[i] for i in range(len(batches))]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; keras {keras.__version__}; model {args.model} "
          f"({' '.join(MODELS[args.model])}); {len(train)} training sentences in {len(encoded)} batches")
    mlflow.set_tracking_uri(cfg.tracking.uri)
    bare, seqlab, seqlab_train, setup = [], [], [], []
    for r in range(args.rounds):
        pipeline.reset(cfg.seed)
        bare += bare_fit(pipeline.build(cfg, data).model, encoded, args.epochs)[1:]
        pipeline.reset(cfg.seed)
        built = pipeline.build(cfg, data)
        dev_seconds: list[float] = []
        real_tag = built.model.tag

        def timed_tag(*a, **k):
            start = time.perf_counter()
            out = real_tag(*a, **k)
            dev_seconds.append(time.perf_counter() - start)
            return out

        built.model.tag = timed_tag
        timer = EpochTimes()
        with mlflow.start_run():
            start = time.perf_counter()
            pipeline.fit_model(cfg, data, built, epochs=args.epochs, patience=100, callbacks=[timer])
            total = time.perf_counter() - start
        # the timer runs after DevScore: its epoch includes the dev scoring
        setup.append(total - sum(timer.seconds))
        seqlab += timer.seconds[1:]
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
