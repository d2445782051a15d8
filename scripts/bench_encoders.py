"""Training and decoding speed of each encoder on the embedded WNUT-16 data, side by side in one run.

    python scripts/bench_encoders.py [--epochs 2]

Every model: word embedding 100 + character CNN (Ma & Hovy), CRF head, batch 32,
the default encoder settings from conf/encoder/. Training speed is measured on
the last of `--epochs` epochs (the first one includes tracing); decoding speed
is `TagPredictor.predict` over the 1,916 training sentences (batch 256).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from seqlab.compose import compose  # noqa: E402
from seqlab.data import load_corpus  # noqa: E402
from seqlab.model.backend import as_dataset  # noqa: E402
from seqlab.pipeline import Data, build  # noqa: E402
from seqlab.task import TaggingTask  # noqa: E402
from seqlab.training import BucketedBatches  # noqa: E402


def measure(encoder: str, epochs: int) -> tuple[float, float, int]:
    cfg = compose([f"+encoder={encoder}"])
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    corpus = load_corpus(cfg.data)
    model = build(cfg, Data(corpus, corpus.train)).model
    task: TaggingTask = model.task
    dataset = as_dataset(BucketedBatches(corpus.train, task, 32, seed=0))
    for _ in range(epochs - 1):
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    train_rate = len(corpus.train) / (time.perf_counter() - start)
    tokens = [list(s.tokens) for s in corpus.train]
    model.tag(tokens)  # warm-up: traces the decoder
    start = time.perf_counter()
    model.tag(tokens)
    return train_rate, len(tokens) / (time.perf_counter() - start), model.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; keras {keras.__version__}")
    print()
    print("| encoder | parameters | train sentences/s | decode sentences/s | train vs bilstm | decode vs bilstm |")
    print("|---|---|---|---|---|---|")
    rows = {name: measure(name, args.epochs) for name in ("bilstm", "bigru", "cnn", "idcnn")}
    base_train, base_decode, _ = rows["bilstm"]
    for name, (train_rate, decode_rate, params) in rows.items():
        print(f"| {name} | {params:,} | {train_rate:.0f} | {decode_rate:.0f} | "
              f"{train_rate / base_train:.2f}x | {decode_rate / base_decode:.2f}x |")


if __name__ == "__main__":
    main()
