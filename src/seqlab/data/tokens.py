"""One normalisation for every token, applied wherever a token enters seqlab: the readers, the
vocabulary (and so `Tagger.tag`, the pyfunc model and `mlflow models serve`).

`normalize_token`: remove Unicode's default-ignorable code points (zero-width spaces and joiners,
byte-order marks, soft hyphens, bidirectional controls, variation selectors, tag characters: the
characters a renderer draws as nothing), then compose canonically (NFC, so that "é" typed as e +
U+0301 is the same token as U+00E9). What training read is then what inference sees: inserting an
ignorable character into a token never changes its tag (tests/test_properties.py).
"""

from __future__ import annotations

import re
import unicodedata

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 15.1).
DEFAULT_IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_IGNORABLE = re.compile(f"[{DEFAULT_IGNORABLE}]")


def normalize_token(token: str) -> str:
    """The token without default-ignorable code points, in NFC. A token made only of them becomes ""."""
    if token.isascii():
        return token  # the common case: nothing to remove, already NFC
    return unicodedata.normalize("NFC", _IGNORABLE.sub("", token))


def is_ignorable(char: str) -> bool:
    """True for a default-ignorable code point (what `normalize_token` removes)."""
    return bool(_IGNORABLE.fullmatch(char))
