"""Subword inputs for a transformer encoder: each word's WordPiece subtokens, in windows the backbone can take.

For a batch of B sentences the task adds two inputs to the word-level ones:

    subwords    int32 [B, NW, W]   subtoken ids, [CLS] ... [SEP] in every window, [PAD] (0 for BERT) after
    piece_word  int32 [B, NW, W]   the word (index into the sentence) each subtoken stands for; -1 for [CLS],
                                   [SEP], padding, and for the subtokens a window only gives context to

A sentence whose subtokens fit the backbone's positions (W <= max_positions) is one window. A longer one is
tagged in full, never cut: it is split into windows of max_positions, each overlapping the next by half a
window, and each subtoken is taken from the window where it sits furthest from an edge (the other windows
see it as context only, piece_word -1 there). The encoder runs the backbone on the B x NW windows and pools
each word's subtokens (seqlab.model.transformer.TransformerEncoder).
"""

from __future__ import annotations

import numpy as np

from seqlab.data.tokens import normalize_token
from seqlab.data.wordpiece import WordPiece

ALIGN = 8  # = seqlab.crf.buckets.BUCKET, the multiple batches are padded to (checked by a test)


def sentence_pieces(wordpiece: WordPiece, tokens) -> tuple[list[int], list[int]]:
    """(subtoken ids, the word index of each) of one sentence, without special tokens."""
    ids, owners = [], []
    for i, token in enumerate(tokens):
        pieces = wordpiece.ids(normalize_token(token))
        ids += pieces
        owners += [i] * len(pieces)
    return ids, owners


def windows(n: int, size: int) -> list[tuple[int, int, int, int]]:
    """(start, end, own_start, own_end) of the windows covering subtokens 0..n: each window spans [start, end)
    (at most `size`), owns [own_start, own_end), and the owned ranges cover 0..n exactly once."""
    if n <= size:
        return [(0, n, 0, n)]
    stride = max(1, size // 2)
    starts = list(range(0, n - size, stride)) + [n - size]
    out = []
    for k, start in enumerate(starts):
        end = start + size
        own_start = 0 if k == 0 else (start + (starts[k - 1] + size)) // 2  # the middle of the overlap
        own_end = n if k == len(starts) - 1 else (starts[k + 1] + end) // 2
        out.append((start, end, own_start, own_end))
    return out


def window_size(wordpiece: WordPiece) -> int:
    """Subtokens per window: the backbone's positions, less [CLS] and [SEP], so that a full window is a
    multiple of ALIGN (padding a batch to a bucket never passes max_positions)."""
    return max(1, (wordpiece.max_positions // ALIGN) * ALIGN - 2)


def pack(wordpiece: WordPiece, pieces: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
    """Each sentence's (subtoken ids, word of each) -> {"subwords", "piece_word"}: int32 [B, NW, W]."""
    size = window_size(wordpiece)
    per_sentence = []
    for ids, owners in pieces:
        rows = []
        for start, end, own_start, own_end in windows(len(ids), size):
            piece_word = [owners[i] if own_start <= i < own_end else -1 for i in range(start, end)]
            rows.append(([wordpiece.cls_id, *ids[start:end], wordpiece.sep_id], [-1, *piece_word, -1]))
        per_sentence.append(rows)
    n_windows = max((len(rows) for rows in per_sentence), default=1)
    width = max((len(ids) for rows in per_sentence for ids, _ in rows), default=2)
    subwords = np.full((len(pieces), max(n_windows, 1), max(width, 2)), wordpiece.pad_id, np.int32)
    piece_word = np.full(subwords.shape, -1, np.int32)
    for b, rows in enumerate(per_sentence):
        for w, (ids, owners) in enumerate(rows):
            subwords[b, w, : len(ids)] = ids
            piece_word[b, w, : len(owners)] = owners
    return {"subwords": subwords, "piece_word": piece_word}


def encode_subwords(wordpiece: WordPiece, sentences) -> dict[str, np.ndarray]:
    """{"subwords": int32 [B, NW, W], "piece_word": int32 [B, NW, W]} for token lists `sentences`."""
    return pack(wordpiece, [sentence_pieces(wordpiece, tokens) for tokens in sentences])


class CorpusPieces:
    """The subtokens of a corpus, split once; called with sentence indices, the packed inputs of that batch
    (what seqlab.data.vocab.EncodedCorpus.batch adds to the word-level inputs)."""

    def __init__(self, wordpiece: WordPiece, sentences):
        self.wordpiece = wordpiece
        self.pieces = [sentence_pieces(wordpiece, tokens) for tokens in sentences]

    def __call__(self, indices) -> dict[str, np.ndarray]:
        return pack(self.wordpiece, [self.pieces[i] for i in indices])
