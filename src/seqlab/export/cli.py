"""`python -m experiments.export`: a logged model or a .keras file, written as a SavedModel or an ONNX model,
then checked to tag exactly as the .keras file does, and timed beside it: sentences per second in batches
of 256 over the check sentences, and the latency of one sentence at a time (seqlab.evaluation.latency)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from seqlab.errors import SeqlabError

SAMPLE = 500  # sentences of the default check (the model's own vocabulary, and unknown words)
BATCH = 256  # sentences per batch, both taggers (Tagger.tag's default)
LATENCY = 100  # sentences tagged one at a time for the latency figures


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m experiments.export",
                                     description="Export a tagger that tags raw tokens without its .keras file.")
    parser.add_argument("source", help="a .keras file, or a logged model: runs:/<run id>/<name>, models:/<name>@champion")
    parser.add_argument("--format", required=True, choices=("savedmodel", "onnx"),
                        help="savedmodel: the whole tagger in one TensorFlow graph; onnx: the emission network, "
                             "decoded in NumPy beside it")
    parser.add_argument("--out", required=True, help="a new (or empty) folder")
    parser.add_argument("--check", metavar="FILE", help="a CoNLL column file whose sentences both taggers tag "
                        f"(default: {SAMPLE} sentences made of the model's own words and unknown ones)")
    parser.add_argument("--uri", help="tracking store for runs:/ and models:/ (default: $MLFLOW_TRACKING_URI or "
                        "sqlite:///mlflow.db)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per file otherwise
    try:
        return _export(args)
    except SeqlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _export(args) -> int:
    from seqlab.saving import load_tagger

    with tempfile.TemporaryDirectory() as tmp:
        path = args.source if os.path.exists(args.source) else _download(args.source, args.uri, tmp)
        tagger = load_tagger(path)
    from seqlab.export import load
    from seqlab.export.save import export_tagger

    started = time.perf_counter()
    export_tagger(tagger, args.format, args.out, source=args.source)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in _files(args.out))
    print(f"exported {args.source} as {args.format} to {args.out} in {seconds:.1f}s ({size / 1e6:.1f} MB)", flush=True)
    started = time.perf_counter()
    exported = load(args.out)
    print(f"loaded it back in {time.perf_counter() - started:.1f}s", flush=True)
    sentences = _check_sentences(args.check, tagger)
    exported.tag(sentences)  # a first pass compiles (XLA: once per bucket of lengths) and warms up, on both sides
    tagger.tag(sentences)
    (expected, keras_rate), (got, export_rate) = _timed(tagger.tag, sentences), _timed(exported.tag, sentences)
    differ = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b]
    where = args.check or f"{len(sentences)} sentences of the model's words"
    if differ:
        i = differ[0]
        print(f"error: the export tags {len(differ)} of {len(sentences)} sentences ({where}) differently, e.g. "
              f"{sentences[i]!r}: {got[i]} instead of {expected[i]}", file=sys.stderr)
        return 1
    print(f"checked: identical tags on {len(sentences)} sentences ({where})", flush=True)
    from seqlab.evaluation import latency

    single = [s for s in sentences if s][:LATENCY]
    lat_keras = latency.summary(latency.latencies_ms(lambda s: tagger.tag([s]), single))
    lat_export = latency.summary(latency.latencies_ms(lambda s: exported.tag([s]), single))
    print(f"| tagger | sentences/s (batches of {BATCH}) | latency p50 ms | latency p95 ms |\n|---|---|---|---|", flush=True)
    for name, rate, lat in ((".keras", keras_rate, lat_keras), (args.format, export_rate, lat_export)):
        print(f"| {name} | {rate:,.0f} | {lat['latency_ms_p50']:.2f} | {lat['latency_ms_p95']:.2f} |", flush=True)
    return 0


def _timed(tag, sentences) -> tuple[list, float]:
    """tag(sentences) and the sentences per second it ran at (encoding from strings included)."""
    started = time.perf_counter()
    out = tag(sentences)
    return out, len(sentences) / max(time.perf_counter() - started, 1e-9)


def _download(uri: str, tracking_uri: str | None, dst: str) -> str:
    from seqlab import tracking
    from seqlab.config import default_tracking_uri

    if "://" not in uri and ":/" not in uri:
        raise SeqlabError(f"{uri}: no such file, and not a model URI (runs:/<run id>/<name>, models:/<name>@<alias>)")
    return tracking.tagger_file(uri, dst, tracking_uri or default_tracking_uri())


def _files(folder):
    from pathlib import Path

    return [p for p in Path(folder).rglob("*") if p.is_file()]


def _check_sentences(path: str | None, tagger) -> list[list[str]]:
    """The check file's sentences, or SAMPLE sentences of 1-40 tokens drawn from the model's vocabulary with
    a tenth unknown words (seeded): every path through the encoder, UNK and long sentences included."""
    if path:
        from seqlab.data.conll import read_conll

        return [list(s.tokens) for s in read_conll(path)]
    words = [w for w in tagger.task.vocabulary.words[2:] if w] or ["word"]
    rng = np.random.default_rng(0)
    return [[words[rng.integers(len(words))] if rng.random() > 0.1 else f"unseen{rng.integers(1000)}"
             for _ in range(int(rng.integers(1, 41)))] for _ in range(SAMPLE)]
