"""XLA against plain graph mode on CPU, for every encoder and both heads, training and decoding.

    python scripts/bench_jit.py                          # CoNLL-2003 from ../shared when present
    python scripts/bench_jit.py --train 3000 --dev 1000  # sentences used from each split
    python scripts/bench_jit.py --json out.json
    python scripts/bench_jit.py --encoders transformer --heads softmax --decode-only --dev 2000

For each encoder (bilstm, bigru, cnn, idcnn) and head (softmax, crf) the same
model (default settings, word embedding 100 + character CNN, batch 32) is built
in each way TensorFlow can run it, and runs exactly what the pipeline runs:
`model.fit` over the bucketed `tf.data` batches (padded to bucket sizes under
XLA), then `Tagger.tag_ids` over dev (batch 256). The ways:

    graph       trainer.jit_compile=false: a plain graph, nothing compiled by XLA
    graph+CRF   a plain graph whose CRF loops (loss and Viterbi) are XLA-compiled functions (CRF head only;
                `auto` on a CPU compiles the loss alone behind CNN and BiGRU encoders, and never the Viterbi)
    XLA         trainer.jit_compile=true: the whole step compiled by XLA

Columns: the first epoch (tracing, and XLA's compilations: once per padded
shape) and the steady state (the last epoch; the second decode pass) in
seconds. The verdict line says where XLA was at least 10% faster than the
better of the other two in the steady state (the compilations cost time and
memory); `trainer.jit_compile=auto` follows these measurements
(seqlab.model.jit). `--smoke` runs a few sentences of one encoder and head.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from seqlab.config import compose  # noqa: E402
from seqlab.jobs.pipeline import prepare, prepare_data, training_batches  # noqa: E402
from seqlab.model.backend import as_dataset  # noqa: E402
from seqlab.testing import conll2003_overrides  # noqa: E402

ENCODERS, HEADS = ("bilstm", "bigru", "cnn", "idcnn"), ("softmax", "crf")


WAYS = {"graph": "false", "graph+CRF": "auto", "XLA": "true"}
MARGIN = 0.9  # XLA must be 10% faster than the better of the other two: it also costs compile time and memory


def measure(encoder: str, head: str, way: str, args) -> dict:
    cfg = compose([f"+encoder={encoder}", f"head={head}", f"trainer.jit_compile={WAYS[way]}", *conll2003_overrides(),
                   *args.overrides])
    data = prepare_data(cfg.data, cfg.task.name)
    data.train, dev = data.train[: args.train], data.corpus.dev[: args.dev]
    model = prepare(cfg, data).model
    if way == "graph+CRF":
        model.head.xla = True  # the loss too, not only the Viterbi that `auto` compiles on a CPU
    xla = way == "XLA"
    assert model.uses_xla("train") == xla and model.uses_xla("decode") == xla
    train = data.train
    epochs = [float("nan")]  # --decode-only: no training, so no batches to build either
    if not args.decode_only:
        dataset = as_dataset(training_batches(model, data, 32, 0, 0.0), xla=xla)
        epochs = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0, shuffle=False)
            epochs.append(time.perf_counter() - start)
    tokens = [list(s.tokens) for s in dev]
    decodes = []
    for _ in range(3 if args.decode_only else 2):
        start = time.perf_counter()
        model.tag_ids(tokens, 256)
        decodes.append(time.perf_counter() - start)
    return {"train_first": epochs[0], "train_steady": epochs[-1], "decode_first": decodes[0], "decode_steady": min(decodes[1:]),
            "train_sentences": len(train), "dev_sentences": len(tokens)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3000, help="training sentences per epoch")
    parser.add_argument("--dev", type=int, default=1500, help="dev sentences decoded")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--decode-only", action="store_true", help="untrained models, the decoder only (three passes: "
                        "the first, then the best of two); e.g. --encoders transformer --heads softmax")
    parser.add_argument("--smoke", action="store_true", help="a few sentences, one encoder and head, no whole-step XLA")
    args = parser.parse_args()
    args.overrides = []
    if args.smoke:
        args.train, args.dev, args.epochs, args.encoders, args.heads = 40, 20, 1, "cnn", "crf"
        args.overrides = ["words.dim=8", "encoder.filters=8"]
        WAYS.pop("XLA")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; keras {keras.__version__}, data: "
          f"{'CoNLL-2003' if conll2003_overrides() else 'embedded WNUT-16'}; {args.train} train / {args.dev} dev sentences")
    print()
    print("| encoder | head | phase | way | first (s) | steady (s) | steady vs graph |")
    print("|---|---|---|---|---|---|---|")
    raw, verdict = {}, {}
    for encoder in args.encoders.split(","):
        for head in args.heads.split(","):
            # graph+CRF is `auto` with the CRF's loss compiled too: behind a transformer `auto` also compiles the
            # whole decoder (seqlab.model.jit), so the way has no plain-graph decoding to measure there.
            ways = [w for w in WAYS if (head == "crf" and encoder != "transformer") or w != "graph+CRF"]
            runs = {way: measure(encoder, head, way, args) for way in ways}
            raw[f"{encoder}/{head}"] = runs
            for phase in ("decode",) if args.decode_only else ("train", "decode"):
                steady = {way: run[f"{phase}_steady"] for way, run in runs.items()}
                if "XLA" in steady:
                    best_other = min(v for w, v in steady.items() if w != "XLA")
                    verdict[(encoder, head, phase)] = steady["XLA"] < MARGIN * best_other
                for way, run in runs.items():
                    print(f"| {encoder} | {head} | {phase} | {way} | {run[f'{phase}_first']:.2f} | {steady[way]:.2f} "
                          f"| {steady['graph'] / steady[way]:.2f}x |", flush=True)
    print()
    faster = [f"{e}/{h} {p}" for (e, h, p), yes in verdict.items() if yes]
    print(f"whole-step XLA >= 10% faster than the better plain graph: {', '.join(faster) or 'nowhere'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
