"""Which tag transitions a tag scheme allows, built from the label names.

`allowed_transitions(["O", "B-PER", "I-PER"], "iob2")` gives three boolean
arrays: trans [K, K] (from, to), start [K] and end [K]. The CRF adds a large
negative score where they are False, so those paths get no probability mass
and are never decoded.
"""

from __future__ import annotations

import numpy as np

from seqlab.data.schemes import split_tag


def allowed_transitions(labels: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (trans [K, K], start [K], end [K]) for `scheme` in {"iob2", "bioes"}."""
    if scheme not in ("iob2", "bioes"):
        raise ValueError(f"constraints exist for iob2 and bioes, not {scheme!r}")
    parts = [split_tag(t) for t in labels]
    k = len(labels)
    trans = np.zeros((k, k), bool)
    for i, (pi, ki) in enumerate(parts):
        for j, (pj, kj) in enumerate(parts):
            trans[i, j] = _allowed(pi, ki, pj, kj, scheme)
    if scheme == "iob2":
        start = np.array([p in "OB" for p, _ in parts])
        end = np.ones(k, bool)
    else:
        start = np.array([p in "OBS" for p, _ in parts])
        end = np.array([p in "OES" for p, _ in parts])
    return trans, start, end


def _allowed(p_from: str, k_from: str, p_to: str, k_to: str, scheme: str) -> bool:
    if scheme == "iob2":
        # I-X may only continue B-X or I-X; everything else is free.
        return p_to != "I" or (p_from in "BI" and k_from == k_to)
    # BIOES: inside an entity (after B/I) only I-X or E-X of the same type may follow;
    # outside one (after O/E/S) only O, B or S may follow.
    if p_from in "BI":
        return p_to in "IE" and k_from == k_to
    return p_to in "OBS"
