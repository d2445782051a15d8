"""Vocabularies and batch encoding: sentences -> padded integer arrays.

Index 0 is padding and index 1 is the unknown word/character in both
vocabularies. Labels have no padding entry: padded positions are masked.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from seqlab.data.corpus import Sentence
from seqlab.data.tokens import normalize_token

PAD, UNK = "<pad>", "<unk>"
UNK_ID = 1  # the unknown word's id (and the unknown character's); 0 is padding
_DIGITS = re.compile(r"\d")
# Casing classes after Reimers & Gurevych (2017); index 0 is padding.
CASINGS = ("<pad>", "numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper", "contains_digit", "other")


def casing_id(token: str) -> int:
    """The casing class of a token, an index into CASINGS."""
    digits = sum(ch.isdigit() for ch in token)
    if token.isdigit():
        return 1
    if digits / max(len(token), 1) > 0.5:
        return 2
    if token.islower():
        return 3
    if token.isupper():
        return 4
    if token[:1].isupper():
        return 5
    if digits:
        return 6
    return 7


@dataclass
class Vocabulary:
    """Maps tokens, characters and labels to ids; saved inside the logged model.

    Word ids: 0 padding, 1 UNK, then the training words (`words`, whose embeddings are trained), then the
    words only pretrained vectors know (`extra_words`, ids from len(words) on, whose vectors stay fixed:
    seqlab.data.vectors). A token is looked up as normalised, then lower-cased among the extra words (GloVe
    is lower-cased).
    """

    words: list[str]
    chars: list[str]
    labels: list[str]
    lowercase: bool = False
    digits_to_zero: bool = True
    max_word_len: int = 20
    extra_words: list[str] = field(default_factory=list)
    _word_ids: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _char_ids: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _extra_ids: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._word_ids = {w: i for i, w in enumerate(self.words)}
        self._char_ids = {c: i for i, c in enumerate(self.chars)}
        self.set_extra_words(self.extra_words)

    def set_extra_words(self, words: list[str]) -> None:
        """The words only pretrained vectors know, in the order of their fixed vectors."""
        self.extra_words = list(words)
        start = len(self.words)
        self._extra_ids = {w: start + i for i, w in enumerate(self.extra_words)}

    @property
    def size(self) -> int:
        """Every word id there is: padding, UNK, the training words and the extra words."""
        return len(self.words) + len(self.extra_words)

    @classmethod
    def build(
        cls,
        train: list[Sentence],
        min_freq: int = 1,
        lowercase: bool = False,
        digits_to_zero: bool = True,
        max_word_len: int = 20,
    ) -> "Vocabulary":
        """Words seen at least `min_freq` times, every character, and the labels, from `train` only."""
        probe = cls([PAD, UNK], [PAD, UNK], [], lowercase, digits_to_zero, max_word_len)
        counts = Counter(probe.normalize(t) for s in train for t in s.tokens)
        words = [PAD, UNK] + sorted(w for w, c in counts.items() if c >= min_freq)
        chars = [PAD, UNK] + sorted({ch for s in train for t in s.tokens for ch in normalize_token(t)})
        labels = sorted({t for s in train for t in s.tags}, key=lambda t: (t != "O", t[2:], t))
        return cls(words, chars, labels, lowercase, digits_to_zero, max_word_len)

    def normalize(self, token: str) -> str:
        """The word form looked up: the token normalised (seqlab.data.tokens), digits to 0, lower-cased as configured."""
        token = normalize_token(token)
        if self.digits_to_zero:
            token = _DIGITS.sub("0", token)
        return token.lower() if self.lowercase else token

    def word_id(self, token: str) -> int:
        word = self.normalize(token)
        found = self._word_ids.get(word)
        if found is not None or not self._extra_ids:
            return UNK_ID if found is None else found
        found = self._extra_ids.get(word)
        return self._extra_ids.get(word.lower(), UNK_ID) if found is None else found

    def oov_rate(self, sentences: list[Sentence]) -> float:
        """Fraction of tokens that map to the unknown word."""
        tokens = [t for s in sentences for t in s.tokens]
        return sum(self.word_id(t) == UNK_ID for t in tokens) / max(len(tokens), 1)

    def encode_tokens(self, batch: list[list[str]] | list[tuple[str, ...]]) -> dict[str, np.ndarray]:
        """Token lists -> {"words": [B, T], "chars": [B, T, W], "casing": [B, T]} int32, right-padded with 0."""
        return self.encode_corpus(batch).batch(np.arange(len(batch)))[0]

    def encode_corpus(self, sentences: list, tags: list | None = None) -> "EncodedCorpus":
        """Token lists (and tag lists) encoded once, for batches cut many times (every training epoch, every
        decoding batch). Each distinct token is encoded once (a test set has ~5x fewer types than tokens)."""
        lengths = np.array([len(s) for s in sentences], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tokens = [t for s in sentences for t in s]
        types = dict.fromkeys(tokens)  # distinct tokens, in order of first appearance
        for row, token in enumerate(types):
            types[token] = row
        rows = np.fromiter((types[t] for t in tokens), np.int32, len(tokens))
        forms = [normalize_token(t) for t in types]
        words = np.fromiter((self.word_id(t) for t in forms), np.int32, len(forms))
        casing = np.fromiter((casing_id(t) for t in forms), np.int32, len(forms))
        chars = np.zeros((len(forms), self.max_word_len), np.int32)
        widths = np.zeros(len(forms), np.int32)
        get = self._char_ids.get
        for i, form in enumerate(forms):
            ids = [get(ch, 1) for ch in form[: self.max_word_len]]
            chars[i, : len(ids)] = ids
            widths[i] = len(ids)
        tag_ids = None
        if tags is not None:
            ids = {t: i for i, t in enumerate(self.labels)}
            tag_ids = np.fromiter((ids.get(t, 0) for ts in tags for t in ts), np.int32, len(tokens))
        return EncodedCorpus(words[rows], casing[rows], chars, widths[rows], tag_ids, offsets, rows)

    def encode_tags(self, batch: list[tuple[str, ...]], length: int) -> np.ndarray:
        """Tag lists -> int32 [B, length]; tags unseen in training map to 0 (they are never predicted)."""
        ids = {t: i for i, t in enumerate(self.labels)}
        out = np.zeros((len(batch), length), np.int32)
        for b, tags in enumerate(batch):
            out[b, : len(tags)] = [ids.get(t, 0) for t in tags]
        return out

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls(**json.loads(text))


@dataclass
class EncodedCorpus:
    """Sentences encoded once as flat per-token arrays; `batch` pads a batch of them.

    words, casing: int32 [N tokens]; widths: int32 [N] characters kept per token; tags: int32 [N] or
    None; offsets: int64 [S + 1], sentence s is tokens offsets[s]:offsets[s + 1]; chars: int32
    [N types, max_word_len], the characters of each distinct token, and types: int32 [N] each token's
    row there (a corpus has ~5-10x fewer types than tokens: a request of 150k tokens holds 0.6 MB of
    types, not 12 MB of characters). `batch` gives exactly what `Vocabulary.encode_tokens` and
    `encode_tags` give for the same sentences, without touching a string.
    """

    words: np.ndarray
    casing: np.ndarray
    chars: np.ndarray
    widths: np.ndarray
    tags: np.ndarray | None
    offsets: np.ndarray
    types: np.ndarray
    extra: Callable[[np.ndarray], dict] | None = None  # sentence indices -> more inputs (a transformer's subwords)

    def batch(self, indices) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Sentence indices -> ({"words": [B, T], "chars": [B, T, W], "casing": [B, T]}, tags [B, T] or None)."""
        starts, ends = self.offsets[indices], self.offsets[np.asarray(indices) + 1]
        longest = int((ends - starts).max(initial=0))
        time = max(longest, 1)
        width = max(int(max((self.widths[a:b].max(initial=0) for a, b in zip(starts, ends)), default=0)), 1)
        words = np.zeros((len(indices), time), np.int32)
        casing = np.zeros_like(words)
        chars = np.zeros((len(indices), time, width), np.int32)
        tags = None if self.tags is None else np.zeros_like(words)
        for row, (a, b) in enumerate(zip(starts, ends)):
            n = b - a
            words[row, :n] = self.words[a:b]
            casing[row, :n] = self.casing[a:b]
            chars[row, :n] = self.chars[self.types[a:b], :width]
            if tags is not None:
                tags[row, :n] = self.tags[a:b]
        inputs = {"words": words, "chars": chars, "casing": casing}
        if self.extra is not None:
            inputs.update(self.extra(indices))
        return inputs, tags


def length_batches(lengths: list[int], batch_size: int, rng: np.random.Generator | None,
                   max_tokens: int | None = None) -> list[np.ndarray]:
    """Group sentence indices into batches of similar length.

    With `rng`, sentences are shuffled, sorted by length inside windows of 50
    batches, cut into batches, and the batch order is shuffled: little padding,
    yet a different grouping each epoch. Without `rng` the order is by length,
    and `max_tokens` also caps a batch's padded size (rows x its longest row):
    long sentences come in smaller batches, so memory stays bounded.
    """
    idx = np.arange(len(lengths))
    lengths = np.asarray(lengths)
    if rng is None:
        order = idx[np.argsort(lengths, kind="stable")]
        if not max_tokens:
            return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        batches, start = [], 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < batch_size and (end - start + 1) * lengths[order[end]] <= max_tokens:
                end += 1
            batches.append(order[start:end])
            start = end
        return batches
    idx = rng.permutation(idx)
    window = batch_size * 50
    batches = []
    for start in range(0, len(idx), window):
        chunk = idx[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
