"""Cross-validation folds and nested training subsets, both fixed by `data.split_seed`.

    data.folds=5 data.fold=2      train+dev cut into 5 folds; fold 2 is dev, the other 4 train (test untouched)
    data.train_fraction=0.3       a 30 % subset of train, inside every larger fraction's subset

Folds are disjoint and their union is train+dev. Sentences of one document (`Sentence.doc`, CoNLL's
-DOCSTART-) stay in one fold: units (documents, or single sentences where there are none) are shuffled
by the seed, then each goes to the fold with the fewest sentences so far, so folds stay balanced.
"""

from __future__ import annotations

import numpy as np

from seqlab.data.corpus import Sentence
from seqlab.errors import DataError

FRACTION_SALT = 0x5E91AB  # the subset order is its own stream: it never repeats the split's shuffle


def fold_units(sentences: list[Sentence]) -> list[list[int]]:
    """Indices of `sentences` grouped into what a fold keeps whole: one document, or one sentence without one."""
    units: dict[object, list[int]] = {}
    for i, s in enumerate(sentences):
        units.setdefault(s.doc if s.doc is not None else ("sentence", i), []).append(i)
    return list(units.values())


def fold_of(sentences: list[Sentence], folds: int, seed: int) -> np.ndarray:
    """The fold (0 .. folds-1) of each sentence, int [N]."""
    units = fold_units(sentences)
    if len(units) < folds:
        kind = "documents" if any(s.doc is not None for s in sentences) else "sentences"
        raise DataError(f"data.folds={folds} needs at least {folds} {kind} in train+dev; there are {len(units)}")
    order = np.random.default_rng(seed).permutation(len(units))
    sizes = np.zeros(folds, dtype=np.int64)
    out = np.empty(len(sentences), dtype=np.int64)
    for u in order:
        k = int(np.argmin(sizes))  # the smallest fold so far (the first one on ties)
        out[units[u]] = k
        sizes[k] += len(units[u])
    return out


def cross_validation_split(pool: list[Sentence], folds: int, fold: int, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    """(train, dev) of fold `fold` of `pool` (train+dev): dev is that fold, train the others, each in pool order."""
    if not 0 <= fold < folds:
        raise DataError(f"data.fold={fold} is not a fold of data.folds={folds}: expected 0 .. {folds - 1}")
    which = fold_of(pool, folds, seed)
    return [s for s, k in zip(pool, which) if k != fold], [s for s, k in zip(pool, which) if k == fold]


def train_subset(train: list[Sentence], fraction: float, seed: int) -> list[Sentence]:
    """The first round(fraction * N) sentences (at least 1) of one seeded order of `train`, kept in corpus order:
    a smaller fraction's subset lies inside a larger one's."""
    if fraction >= 1:
        return list(train)
    order = np.random.default_rng([seed, FRACTION_SALT]).permutation(len(train))
    keep = np.sort(order[: max(1, int(round(fraction * len(train))))])
    return [train[i] for i in keep]
