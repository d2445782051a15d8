"""Which tag transitions a tag scheme allows, read from the label strings alone.

`allowed_transitions(["O", "B-PER", "I-PER"], "iob2")` gives three boolean
arrays: trans [K, K] (trans[i, j]: from tag i to tag j), start [K] and end [K].
The CRF adds a large negative score where they are False, so those paths get
no probability mass and are never decoded. After allennlp's
`allowed_transitions`, this module parses the labels itself: the CRF package
depends on no corpus code.
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("iob1", "iob2", "bioes")


def parse_label(label: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''). Anything else raises ValueError."""
    if label == "O":
        return "O", ""
    prefix, sep, kind = label.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not kind:
        raise ValueError(f"label {label!r} is not 'O' nor PREFIX-TYPE with PREFIX in B, I, E, S")
    return prefix, kind


def allowed_transitions(labels: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (trans [K, K], start [K], end [K]) for `scheme` in iob1, iob2, bioes."""
    if scheme not in SCHEMES:
        raise ValueError(f"constraints exist for {', '.join(SCHEMES)}, not {scheme!r}")
    parts = [parse_label(t) for t in labels]
    k = len(labels)
    trans = np.zeros((k, k), bool)
    for i, (p_from, k_from) in enumerate(parts):
        for j, (p_to, k_to) in enumerate(parts):
            trans[i, j] = _allowed(p_from, k_from, p_to, k_to, scheme)
    if scheme == "iob1":
        # IOB1: a chunk starts with I-; B- only separates two adjacent chunks of one type.
        start = np.array([p in "OI" for p, _ in parts])
        end = np.ones(k, bool)
    elif scheme == "iob2":
        # IOB2: every chunk starts with B-, so a sentence never starts inside one.
        start = np.array([p in "OB" for p, _ in parts])
        end = np.ones(k, bool)
    else:
        # BIOES: a sentence starts and ends outside a chunk, or with a one-token S-.
        start = np.array([p in "OBS" for p, _ in parts])
        end = np.array([p in "OES" for p, _ in parts])
    return trans, start, end


def _allowed(p_from: str, k_from: str, p_to: str, k_to: str, scheme: str) -> bool:
    if scheme == "iob1":
        # B-X only directly after a chunk of the same type X; E- and S- do not exist.
        if p_to in "ES" or p_from in "ES":
            return False
        return p_to != "B" or (p_from in "BI" and k_from == k_to)
    if scheme == "iob2":
        # I-X may only continue B-X or I-X; E- and S- do not exist; everything else is free.
        if p_to in "ES" or p_from in "ES":
            return False
        return p_to != "I" or (p_from in "BI" and k_from == k_to)
    # BIOES: inside a chunk (after B/I) only I-X or E-X of the same type may follow;
    # outside one (after O/E/S) only O, B or S may follow.
    if p_from in "BI":
        return p_to in "IE" and k_from == k_to
    return p_to in "OBS"
