"""Hugging Face datasets as a data source (`data=hf`).

Tags may be ClassLabel ids (their names are used) or strings. Nothing is
downloaded unless the user asks for a hub dataset; `data.from_disk` reads a
dataset saved with `save_to_disk`.
"""

from __future__ import annotations

from typing import Any

from seqlab.data.conll import clean_token
from seqlab.data.corpus import Sentence, checked_sentences
from seqlab.errors import DataError


def load_hf_splits(data: Any, scheme: str | None = None) -> dict[str, list[Sentence]]:
    """{"train": [...], "dev": [...] (may be missing), "test": [...]} in IOB2 (tags read in `scheme`,
    default data.scheme; "none" keeps free tags)."""
    scheme = scheme or data.scheme
    import datasets

    where = data.from_disk or data.name
    try:
        if data.from_disk:
            dataset = datasets.load_from_disk(data.from_disk)
        else:
            dataset = datasets.load_dataset(data.name, data.config, revision=data.revision)
    except Exception as e:  # network, missing dataset, bad revision: all end the same way for the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"cannot load Hugging Face dataset {where!r} ({type(e).__name__}: {reason[:200]}); "
            f"the hub may be unreachable or the name wrong. For local files use data=conll data.train=... data.test=..."
        ) from None
    if not isinstance(dataset, datasets.DatasetDict):
        raise DataError(f"{where}: expected a DatasetDict with splits, got a single {type(dataset).__name__}")
    wanted = {"train": data.train_split, "dev": data.dev_split, "test": data.test_split}
    for role in ("train", "test"):
        if wanted[role] not in dataset:
            raise DataError(f"{where}: no split {wanted[role]!r} (data.{role}_split); it has {sorted(dataset)}")
    return {
        role: _sentences(dataset[split], data, f"{where}[{split}]", scheme)
        for role, split in wanted.items()
        if split and split in dataset
    }


def _sentences(split, data: Any, where: str, scheme: str) -> list[Sentence]:
    for field in (data.tokens_field, data.tags_field):
        if field not in split.column_names:
            raise DataError(f"{where}: no column {field!r} (data.tokens_field / data.tags_field); columns are {split.column_names}")
    feature = split.features[data.tags_field]
    names = getattr(getattr(feature, "feature", None), "names", None)  # Sequence(ClassLabel) -> its names
    rows = []
    for i, (tokens, tags) in enumerate(zip(split[data.tokens_field], split[data.tags_field])):
        if len(tokens) != len(tags):
            raise DataError(f"{where} row {i}: {len(tokens)} tokens but {len(tags)} tags")
        if tokens:
            rows.append(([clean_token(str(t)) for t in tokens], [names[t] if names else str(t) for t in tags]))
    if not rows:
        raise DataError(f"{where}: no sentences")
    return checked_sentences(rows, scheme, lambda i, j: f"{where} row {i}, token {j}")
