"""Tag schemes: parsing, validation and conversion between IOB1, IOB2 and BIOES.

Everything inside seqlab is IOB2 after reading; `to_training_scheme` may turn
training tags into BIOES, and `to_iob2` turns predictions back for scoring.
"""

from __future__ import annotations

SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}


class TagError(ValueError):
    """A tag does not fit its scheme. `index` is the offending token's position."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''). Raises ValueError on malformed tags."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or len(prefix) != 1 or not kind:
        raise ValueError(f"malformed tag {tag!r}: expected 'O' or PREFIX-TYPE such as 'B-PER'")
    return prefix, kind


def check_tags(tags: list[str] | tuple[str, ...], scheme: str) -> None:
    """Raise TagError if `tags` (one sentence) do not fit `scheme`.

    IOB1 tolerates a B- after O: the CoNLL-2003 training file has two, and
    either reading starts a new entity there.
    """
    allowed = _PREFIXES[scheme]
    prev_prefix, prev_kind = "O", ""
    for i, tag in enumerate(tags):
        try:
            prefix, kind = split_tag(tag)
        except ValueError as e:
            raise TagError(str(e), i) from None
        if prefix != "O" and prefix not in allowed:
            raise TagError(f"tag {tag!r} has prefix {prefix!r}, which {scheme} does not use", i)
        continues = prefix in "IE"
        if scheme in ("iob2", "bioes") and continues:
            if prev_prefix not in "BI" or prev_kind != kind:
                raise TagError(f"tag {tag!r} cannot follow {_join(prev_prefix, prev_kind)!r} in {scheme}", i)
        if scheme == "bioes" and prev_prefix in "BI" and not (continues and prev_kind == kind):
            raise TagError(f"{_join(prev_prefix, prev_kind)!r} must be followed by I-/E-{prev_kind} in bioes", i - 1)
        prev_prefix, prev_kind = prefix, kind
    if scheme == "bioes" and prev_prefix in "BI":
        raise TagError(f"sentence ends inside an entity ({_join(prev_prefix, prev_kind)!r}) in bioes", len(tags) - 1)


def detect_scheme(sentences_tags: list[list[str]]) -> str:
    """Guess the scheme of a whole file: BIOES if E-/S- occur, IOB1 if a chunk starts with I-."""
    prefixes = {split_tag(t)[0] for tags in sentences_tags for t in tags}
    if prefixes & {"E", "S"}:
        return "bioes"
    for tags in sentences_tags:
        prev_kind = ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix == "I" and prev_kind != kind:
                return "iob1"
            prev_kind = kind
    return "iob2"


def to_iob2(tags: list[str] | tuple[str, ...], scheme: str = "iob2") -> list[str]:
    """Convert one sentence's tags from `scheme` to IOB2. Lenient: an I- after O starts an entity."""
    out: list[str] = []
    prev_kind = ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "O":
            out.append("O")
        elif prefix in "BS":
            out.append(f"B-{kind}")
        else:  # I or E: continues an entity of the same type, else starts one
            out.append(f"I-{kind}" if prev_kind == kind else f"B-{kind}")
        # An entity is open after B-/I- (and, outside BIOES, after any E-/S- too); in BIOES E-/S- close it.
        closes = prefix == "O" or (scheme == "bioes" and prefix in "ES")
        prev_kind = "" if closes else kind
    return out


def iob2_to_bioes(tags: list[str] | tuple[str, ...]) -> list[str]:
    """IOB2 -> BIOES: the last token of an entity becomes E- (or S- for one token)."""
    out = []
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        ends = nxt != f"I-{kind}"
        if prefix == "O":
            out.append("O")
        elif prefix == "B":
            out.append(f"S-{kind}" if ends else tag)
        else:
            out.append(f"E-{kind}" if ends else tag)
    return out


def entity_spans(tags: list[str] | tuple[str, ...]) -> list[tuple[str, int, int]]:
    """IOB2 tags -> [(type, start, end_exclusive)]; an I- after O or another type starts a span."""
    spans: list[tuple[str, int, int]] = []
    start, cur = 0, ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = split_tag(tag)
        if cur and (prefix != "I" or kind != cur):
            spans.append((cur, start, i))
            cur = ""
        if prefix in "BI" and not cur:
            start, cur = i, kind
    return spans


def _join(prefix: str, kind: str) -> str:
    return "O" if prefix == "O" else f"{prefix}-{kind}"
