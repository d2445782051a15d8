"""WordPiece, as BERT-family models split words into subtokens, in plain Python.

    pieces = WordPiece.from_folder(folder)           # vocab.txt (Hugging Face) or assets/tokenizer/vocabulary.txt
    pieces.ids("unaffable")                          # [id("una"), id("##ff"), id("##able")]

The word is given (a tagger's token), so only what BERT's basic tokenizer does inside a word applies:
lower-casing and accent stripping for uncased models, splitting off punctuation (BERT's own rule: ASCII
punctuation and Unicode P* categories) and CJK characters, then greedy longest-match-first WordPiece with
`##` continuations; a word with no match, or longer than 100 characters, is [UNK]. Plain Python keeps the
task (which encodes the inputs) free of TensorFlow, the same on every backend; tests/test_pretrained.py checks it
against the `tokenizers` library on the real vocabulary.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from seqlab.errors import ConfigError

VOCAB_FILES = ("vocab.txt", "assets/tokenizer/vocabulary.txt")  # Hugging Face layout, keras-hub layout
MAX_WORD_CHARS = 100  # BERT's max_input_chars_per_word


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


@dataclass
class WordPiece:
    """A WordPiece vocabulary and its rules. `pieces[i]` is subtoken id i; `lowercase`: an uncased model.

    `max_positions`: the backbone's longest input (special tokens included); longer sentences are tagged
    in overlapping windows (seqlab.task.subwords)."""

    pieces: list[str]
    lowercase: bool = True
    max_positions: int = 512
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    pad: str = "[PAD]"
    unk: str = "[UNK]"
    _ids: dict = field(default_factory=dict, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._ids = {p: i for i, p in enumerate(self.pieces)}
        for special in (self.cls, self.sep, self.pad, self.unk):
            if special not in self._ids:
                raise ConfigError(f"the WordPiece vocabulary has no {special} token: not a BERT-family vocabulary")

    @classmethod
    def from_folder(cls, folder: str | Path) -> "WordPiece":
        """The vocabulary, casing and positions of a Hugging Face or keras-hub BERT-family folder."""
        folder = Path(folder)
        vocab = next((folder / name for name in VOCAB_FILES if (folder / name).exists()), None)
        if vocab is None:
            raise ConfigError(f"{folder}: no WordPiece vocabulary ({' or '.join(VOCAB_FILES)}): not a BERT-family model folder")
        pieces = vocab.read_text(encoding="utf-8").splitlines()
        while pieces and not pieces[-1]:
            pieces.pop()
        lowercase, max_positions = True, 512
        for name in ("tokenizer_config.json", "tokenizer.json"):
            config = _json(folder / name)
            if "do_lower_case" in config:
                lowercase = bool(config["do_lower_case"])
            normalizer = config.get("normalizer") or {}
            if "lowercase" in normalizer:
                lowercase = bool(normalizer["lowercase"])
        model = _json(folder / "config.json")
        inner = model.get("config", model)  # keras-hub: {"class_name": ..., "config": {...}}
        max_positions = int(inner.get("max_position_embeddings") or inner.get("max_sequence_length") or max_positions)
        if "lowercase" in inner:
            lowercase = bool(inner["lowercase"])
        return cls(pieces, lowercase, max_positions)

    @property
    def pad_id(self) -> int:
        return self._ids[self.pad]

    @property
    def cls_id(self) -> int:
        return self._ids[self.cls]

    @property
    def sep_id(self) -> int:
        return self._ids[self.sep]

    def ids(self, word: str) -> list[int]:
        """The subtoken ids of one word (at least one: [UNK] when nothing matches; an empty word is [UNK])."""
        cached = self._cache.get(word)
        if cached is None:
            cached = [self._ids[p] for p in self.split(word)] or [self._ids[self.unk]]
            if len(self._cache) < 500_000:
                self._cache[word] = cached
        return cached

    def split(self, word: str) -> list[str]:
        """The subtokens of one word."""
        text = word
        if self.lowercase:
            text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
        out: list[str] = []
        for chunk in _basic_split(text):
            out += self._wordpiece(chunk)
        return out

    def _wordpiece(self, chunk: str) -> list[str]:
        if len(chunk) > MAX_WORD_CHARS:
            return [self.unk]
        pieces, start = [], 0
        while start < len(chunk):
            end, found = len(chunk), None
            while start < end:
                candidate = chunk[start:end] if start == 0 else "##" + chunk[start:end]
                if candidate in self._ids:
                    found = candidate
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces

    def to_dict(self) -> dict:
        return {"pieces": self.pieces, "lowercase": self.lowercase, "max_positions": self.max_positions, "cls": self.cls,
                "sep": self.sep, "pad": self.pad, "unk": self.unk}


def _basic_split(text: str) -> list[str]:
    """BERT's basic tokenizer inside one word: control characters dropped, whitespace splits, punctuation and CJK
    characters stand alone."""
    chunks, current = [], []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if ch.isspace():
            if current:
                chunks.append("".join(current))
                current = []
        elif _is_punctuation(ch) or _is_cjk(cp):
            if current:
                chunks.append("".join(current))
                current = []
            chunks.append(ch)
        else:
            current.append(ch)
    if current:
        chunks.append("".join(current))
    return chunks


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        return {}
