"""Scores of predicted tags: span F1 with seqeval (ner, chunk), token accuracy (pos).

`score(kind, gold, pred)` is the one entry point; the task kind
(`seqlab.config.choices.TASKS`) decides which scorer runs and what its metrics are called.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from seqlab.data.corpus import has_entities


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


def invalid_transition_rate(sequences: list[list[str]], labels: list[str], scheme: str) -> float:
    """Share of predicted transitions that `scheme` forbids, counting start -> first and last -> end.

    A sentence of length L has L + 1 transitions. Tags outside `labels` are ignored.
    """
    from seqlab.crf import allowed_transitions

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


@dataclass
class Scores:
    """One split's scores. metrics: {name: value}, e.g. entity_f1, entity_precision... or accuracy;
    per_label: F1 per entity type, or accuracy per POS tag; support: gold count per label."""

    metrics: dict[str, float]
    per_label: dict[str, float]
    support: dict[str, int]
    report: str
    per_label_name: str  # "f1" or "accuracy": what per_label holds


def score(kind, gold: list[list[str]], pred: list[list[str]]) -> Scores:
    """Score `pred` against `gold` (both in the output scheme) as task kind `kind` says."""
    if kind.spans:
        s = entity_scores(gold, pred)
        unit = kind.unit  # entity_f1, chunk_f1, ...
        metrics = {f"{unit}_{k[len('entity_'):]}": float(v) for k, v in s.items() if k.startswith("entity_")}
        return Scores(metrics, s["per_type_f1"], s["per_type_support"], s["report"], "f1")
    return token_scores(gold, pred)


def token_scores(gold: list[list[str]], pred: list[list[str]]) -> Scores:
    """Token accuracy, and per gold tag the share of its tokens tagged right (plus precision in the report)."""
    support, correct, predicted = Counter(), Counter(), Counter()
    for g_seq, p_seq in zip(gold, pred):
        for g, p in zip(g_seq, p_seq):
            support[g] += 1
            predicted[p] += 1
            correct[g] += int(g == p)
    total = sum(support.values())
    accuracy = sum(correct.values()) / total if total else 0.0
    per_tag = {t: correct[t] / n for t, n in support.items()}
    lines = [f"{'tag':>12} {'tokens':>8} {'correct':>8} {'accuracy':>9} {'predicted':>10} {'precision':>10}"]
    for t in sorted(support, key=lambda t: (-support[t], t)):
        precision = correct[t] / predicted[t] if predicted[t] else 0.0
        lines.append(f"{t:>12} {support[t]:>8} {correct[t]:>8} {per_tag[t]:>9.4f} {predicted[t]:>10} {precision:>10.4f}")
    lines.append(f"\n{'accuracy':>12} {total:>8} {sum(correct.values()):>8} {accuracy:>9.4f}")
    return Scores({"accuracy": accuracy}, per_tag, dict(support), "\n".join(lines) + "\n", "accuracy")
