"""Entity-level scores with seqeval (IOB2, conlleval-compatible default mode)."""

from __future__ import annotations

import numpy as np
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Micro entity precision/recall/F1 (default mode), strict-mode F1, per-type F1 and the report.

    Strict mode needs the scheme spelled out: without `scheme=IOB2` seqeval
    silently falls back to its default mode. With no entity in gold nor in the
    predictions (an all-`O` split) every score is 0 and the report says so;
    seqeval's own report would crash there.
    """
    if not has_entities(gold) and not has_entities(pred):
        return {"entity_f1": 0.0, "entity_precision": 0.0, "entity_recall": 0.0, "entity_f1_strict": 0.0,
                "per_type_f1": {}, "per_type_support": {}, "report": NO_ENTITIES_REPORT}
    per_type = classification_report(gold, pred, output_dict=True, zero_division=0)
    return {
        "entity_f1": f1_score(gold, pred, zero_division=0),
        "entity_precision": precision_score(gold, pred, zero_division=0),
        "entity_recall": recall_score(gold, pred, zero_division=0),
        "entity_f1_strict": f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0),
        "per_type_f1": {k: v["f1-score"] for k, v in per_type.items() if not k.endswith(" avg")},
        "per_type_support": {k: int(v["support"]) for k, v in per_type.items() if not k.endswith(" avg")},
        "report": classification_report(gold, pred, digits=4, zero_division=0),
    }


NO_ENTITIES_REPORT = "no entities: the gold tags and the predictions are all O, so every entity score is 0\n"


def has_entities(sequences: list[list[str]]) -> bool:
    """True if any tag opens or continues an entity (anything but O)."""
    return any(tag != "O" for seq in sequences for tag in seq)


def invalid_transition_rate(sequences: list[list[str]], labels: list[str], scheme: str) -> float:
    """Share of predicted transitions that `scheme` forbids, counting start -> first and last -> end.

    A sentence of length L has L + 1 transitions. Tags outside `labels` are ignored.
    """
    from seqlab.constraints import allowed_transitions

    trans, start, end = allowed_transitions(list(labels), scheme)
    index = {t: i for i, t in enumerate(labels)}
    bad = total = 0
    for seq in sequences:
        ids = [index[t] for t in seq if t in index]
        if not ids:
            continue
        total += len(ids) + 1
        bad += int(not start[ids[0]]) + int(not end[ids[-1]])
        bad += sum(int(not trans[a, b]) for a, b in zip(ids, ids[1:]))
    return bad / total if total else 0.0


def tag_bigram_counts(sequences: list[list[str]], labels: list[str]) -> np.ndarray:
    """Counts of predicted transitions [K + 1, K + 1]: row 0 is <start>, column K is <end>.

    counts[0, j]: sentences starting with tag j; counts[i + 1, j]: tag i followed by tag j;
    counts[i + 1, K]: sentences ending with tag i. Tags outside `labels` are skipped.
    """
    index = {t: i for i, t in enumerate(labels)}
    k = len(labels)
    counts = np.zeros((k + 1, k + 1))
    for seq in sequences:
        ids = [index[t] for t in seq if t in index]
        if not ids:
            continue
        counts[0, ids[0]] += 1
        counts[ids[-1] + 1, k] += 1
        for a, b in zip(ids, ids[1:]):
            counts[a + 1, b] += 1
    return counts
