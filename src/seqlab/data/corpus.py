"""The in-memory corpus: sentences of tokens with one tag each."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from seqlab.data.schemes import TagError, check_tags, detect_scheme, entity_spans, to_iob2
from seqlab.errors import DataError


@dataclass(frozen=True)
class Sentence:
    """One sentence: `tokens[i]` carries the tag `tags[i]`; `doc` names its document where the source
    marks documents (CoNLL's -DOCSTART-), else None. Equality and digests ignore `doc`."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    doc: str | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Corpus:
    """Train, dev and test splits of one data source, all in IOB2 (span tasks) or free tags (pos)."""

    name: str
    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]
    sources: dict[str, str] = field(default_factory=dict)  # split -> where it came from

    def splits(self) -> dict[str, list[Sentence]]:
        return {"train": self.train, "dev": self.dev, "test": self.test}


def has_entities(sequences: list[list[str]]) -> bool:
    """True if any tag opens or continues an entity (anything but O)."""
    return any(tag != "O" for seq in sequences for tag in seq)



def split_stats(sentences: list[Sentence], spans: bool = True) -> dict[str, int]:
    """Sentence, token and per-type entity counts of one split (spans=False: per-tag token counts)."""
    per_type: Counter[str] = Counter()
    if not spans:
        for s in sentences:
            per_type.update(s.tags)
        stats = {"sentences": len(sentences), "tokens": sum(len(s) for s in sentences), "tags": len(per_type)}
        return {**stats, **{f"tokens_{k}": v for k, v in sorted(per_type.items())}}
    for s in sentences:
        per_type.update(kind for kind, _, _ in entity_spans(s.tags))
    stats = {"sentences": len(sentences), "tokens": sum(len(s) for s in sentences)}
    stats["entities"] = sum(per_type.values())
    stats.update({f"entities_{k}": v for k, v in sorted(per_type.items())})
    return stats


def content_digest(sentences: list[Sentence]) -> str:
    """sha256 over tokens and tags: equal digests mean equal data."""
    h = hashlib.sha256()
    for s in sentences:
        for tok, tag in zip(s.tokens, s.tags):
            h.update(tok.encode("utf-8") + b"\t" + tag.encode("utf-8") + b"\n")
        h.update(b"\n")
    return h.hexdigest()


def checked_sentences(rows: list[tuple[list[str], list[str]]], scheme: str, locate,
                      docs: list[str | None] | None = None) -> list[Sentence]:
    """(tokens, tags) rows in `scheme` (or "auto": detected) -> IOB2 Sentences (`docs[i]`: row i's document).

    A tag that does not fit raises DataError at `locate(row, token)`, e.g. "train.txt:12".
    `scheme="none"`: free tags (POS), kept as they are, unchecked.
    """
    docs = docs or [None] * len(rows)
    if scheme == "none":
        return [Sentence(tuple(tokens), tuple(tags), doc) for (tokens, tags), doc in zip(rows, docs)]
    declared = scheme
    if scheme == "auto":
        try:
            scheme = detect_scheme([tags for _, tags in rows])
        except ValueError:
            scheme = "iob2"  # a malformed tag: check_tags below names its place
    out = []
    for i, (tokens, tags) in enumerate(rows):
        try:
            check_tags(tags, scheme)
        except TagError as e:
            raise DataError(f"{locate(i, e.index)}: {e} (data.scheme={declared})") from None
        out.append(Sentence(tuple(tokens), tuple(to_iob2(tags, scheme)), docs[i]))
    return out
