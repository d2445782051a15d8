"""Pretrained word vectors from a local GloVe or word2vec text file."""

from __future__ import annotations

import numpy as np

from seqlab.data.vocab import Vocabulary
from seqlab.errors import ConfigError, DataError


def read_vectors(path: str, fmt: str = "auto", wanted: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """{word: float32 [dim]} and dim. word2vec text starts with a 'count dim' header; GloVe has none.

    With `wanted`, only those words are kept (a big file then costs little memory).
    """
    vectors: dict[str, np.ndarray] = {}
    dim = None
    try:
        f = open(path, encoding="utf-8", errors="strict")
    except OSError as e:
        raise DataError(f"{path}: cannot open pretrained vectors (words.pretrained_path): {e.strerror}") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if lineno == 1 and fmt != "glove" and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # word2vec header
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(f"{path}:{lineno}: expected a word and {dim} numbers, found {len(parts) - 1} numbers")
            if wanted is None or parts[0] in wanted:
                try:
                    vectors[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}:{lineno}: not a number in the vector of {parts[0]!r}") from None
    if dim is None:
        raise DataError(f"{path}: no vectors found")
    return vectors, dim


def embedding_matrix(vocab: Vocabulary, path: str, fmt: str, dim: int, seed: int) -> tuple[np.ndarray, float]:
    """float32 [len(vocab.words), dim] initialised from the file, and its coverage of the vocabulary.

    A word is found as written or lower-cased; missing words (and UNK) keep a
    small random vector; padding is zero. Coverage counts real words only.
    """
    words = vocab.words[2:]
    vectors, file_dim = read_vectors(path, fmt, wanted=set(words) | {w.lower() for w in words})
    if file_dim != dim:
        raise ConfigError(f"words.dim={dim} but {path} holds {file_dim}-dimensional vectors; set words.dim={file_dim}")
    rng = np.random.default_rng(seed)
    scale = np.sqrt(3.0 / dim)
    matrix = rng.uniform(-scale, scale, size=(len(vocab.words), dim)).astype(np.float32)
    matrix[0] = 0.0
    found = 0
    for i, word in enumerate(vocab.words[2:], start=2):
        vec = vectors.get(word)
        if vec is None:
            vec = vectors.get(word.lower())
        if vec is not None:
            matrix[i] = vec
            found += 1
    return matrix, found / max(len(words), 1)
