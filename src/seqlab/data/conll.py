"""Reader for CoNLL-style column files.

One token per line, columns split on any whitespace (or on `sep`), sentences
separated by lines that hold only whitespace (WNUT-17 uses a lone TAB).
`-DOCSTART-` lines are skipped whether or not a blank line follows them; each one opens a document
(`Sentence.doc`, "<file>#<n>"), which cross-validation folds keep whole.
CRLF endings are accepted; every token goes through seqlab.data.tokens.normalize_token (zero-width
characters and byte-order marks removed, NFC), as at inference.
Every error names file:line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from seqlab.data.corpus import Sentence, checked_sentences
from seqlab.data.schemes import SCHEMES
from seqlab.data.tokens import normalize_token
from seqlab.errors import DataError

@dataclass(frozen=True)
class ColumnFormat:
    """How to read a column file. `sep=None` splits on any whitespace."""

    token_col: int = 0
    tag_col: int = -1
    sep: str | None = None
    encoding: str = "utf-8"
    scheme: str = "auto"  # iob1 | iob2 | bioes | auto; "none": free tags (POS), read as they are


def read_conll(path: str | os.PathLike, fmt: ColumnFormat = ColumnFormat()) -> list[Sentence]:
    """Read a column file into IOB2 sentences. Raises DataError naming file:line."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a column file") from None
    try:
        text = raw.decode(fmt.encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: bytes not valid in encoding {fmt.encoding!r} ({e.reason}); "
            f"set data.encoding to the file's encoding"
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding {fmt.encoding!r} in data.encoding") from None
    return parse_conll(text, path, fmt)


def parse_conll(text: str, name: str, fmt: ColumnFormat = ColumnFormat()) -> list[Sentence]:
    """Parse column-file text; `name` is used in error messages."""
    if fmt.scheme not in (*SCHEMES, "auto", "none"):
        raise DataError(f"data.scheme={fmt.scheme!r} is not one of iob1, iob2, bioes, auto")
    sentences: list[tuple[list[str], list[str], list[int]]] = []
    docs: list[int] = []  # the document of each sentence: how many -DOCSTART- lines came before it
    doc = 0
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    n_cols = None
    need = max(fmt.token_col, fmt.tag_col) + 1 if fmt.tag_col >= 0 and fmt.token_col >= 0 else None

    def close() -> None:
        nonlocal tokens, tags, lines
        if tokens:
            sentences.append((tokens, tags, lines))
            docs.append(doc)
        tokens, tags, lines = [], [], []

    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            close()
            continue
        cols = line.split(fmt.sep) if fmt.sep else line.split()
        if cols[0].lstrip("\ufeff") == "-DOCSTART-":
            close()
            doc += 1
            continue
        if n_cols is None:
            n_cols = len(cols)
            if n_cols < 2:
                raise DataError(f"{name}:{lineno}: expected a token and a tag column, found 1 column: {line!r}")
            try:
                cols[fmt.token_col], cols[fmt.tag_col]
            except IndexError:
                raise DataError(
                    f"{name}:{lineno}: data.token_col={fmt.token_col} / data.tag_col={fmt.tag_col} "
                    f"out of range for {n_cols} columns: {line!r}"
                ) from None
        if len(cols) != n_cols or (need and len(cols) < need):
            raise DataError(f"{name}:{lineno}: expected {n_cols} columns, found {len(cols)}: {line!r}")
        tokens.append(normalize_token(cols[fmt.token_col]))
        tags.append(cols[fmt.tag_col].strip())
        lines.append(lineno)
    close()

    if not sentences:
        raise DataError(f"{name}: no sentences (the file is empty or holds only blank/-DOCSTART- lines)")
    rows = [(toks, tgs) for toks, tgs, _ in sentences]
    named = [f"{name}#{d}" for d in docs] if doc else None  # no -DOCSTART- line: no documents
    return checked_sentences(rows, fmt.scheme, lambda i, j: f"{name}:{sentences[i][2][j]}", named)
