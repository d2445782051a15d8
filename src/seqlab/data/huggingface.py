"""Hugging Face datasets as a data source (`data=hf`).

Tags may be ClassLabel ids (their names are used) or strings. Nothing is
downloaded unless the user asks for a hub dataset; `data.from_disk` reads a
dataset saved with `save_to_disk`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from seqlab.data.corpus import Sentence, checked_sentences
from seqlab.data.tokens import normalize_token
from seqlab.errors import DataError

log = logging.getLogger(__name__)


HUB_TIMEOUT = 3.0  # seconds to reach the hub before loading offline (from the local cache) instead


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether the Hugging Face hub ($HF_ENDPOINT) accepts a connection within `timeout` seconds (name lookup
    included: it runs in a thread, since a broken resolver can block far longer)."""
    import socket
    import threading
    import urllib.parse

    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    answer: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def go_offline_unless_reachable(data: Any) -> None:
    """Before loading `data.name` from the hub: when the hub does not answer, load from the local cache only
    (HF_HUB_OFFLINE), so that a missing dataset fails at once instead of after minutes of retries."""
    if data.from_disk or os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return
    if not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        log.info("the Hugging Face hub does not answer within %.0f s: loading %s from the local cache", HUB_TIMEOUT, data.name)


def load_hf_splits(data: Any, scheme: str | None = None) -> dict[str, list[Sentence]]:
    """{"train": [...], "dev": [...] (may be missing), "test": [...]} in IOB2 (tags read in `scheme`,
    default data.scheme; "none" keeps free tags)."""
    scheme = scheme or data.scheme
    go_offline_unless_reachable(data)
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
            f"the hub may be unreachable{' (it did not answer: only the local cache was read)' if os.environ.get('HF_HUB_OFFLINE') else ''} "
            f"or the name wrong. For local files use data=conll data.train=... data.test=..."
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
            rows.append(([normalize_token(str(t)) for t in tokens], [names[t] if names else str(t) for t in tags]))
    if not rows:
        raise DataError(f"{where}: no sentences")
    return checked_sentences(rows, scheme, lambda i, j: f"{where} row {i}, token {j}")
