"""The figures explain themselves: legends for hatched and grey cells, <start>/<end>, per-type bars, trial curves."""

import numpy as np

from seqlab.crf.constraints import allowed_transitions
from seqlab.evaluation.figures import plot_f1_by_type, plot_trial_curves
from seqlab.model.transition_figures import plot_crf_transitions, plot_predicted_transitions, tag_bigram_counts

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def legend_texts(fig):
    return [t.get_text() for ax in fig.axes for leg in [ax.get_legend()] if leg for t in leg.get_texts()]


def hatched(fig, color=None):
    return [p for p in fig.axes[0].patches if p.get_hatch() == "///"]


def is_png(path):
    return open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_crf_heatmap_has_start_end_and_a_legend_for_forbidden_cells(tmp_path):
    rng = np.random.default_rng(0)
    allowed = allowed_transitions(LABELS, "iob2")
    fig = plot_crf_transitions(rng.normal(size=(5, 5)), rng.normal(size=5), rng.normal(size=5), LABELS,
                               allowed, "iob2", path=str(tmp_path / "crf.png"))
    assert is_png(tmp_path / "crf.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["<start>", *LABELS]
    assert [t.get_text() for t in ax.get_xticklabels()] == [*LABELS, "<end>"]
    forbidden = int((~allowed[0]).sum() + (~allowed[1]).sum() + (~allowed[2]).sum())
    assert len(hatched(fig)) == forbidden == 6 + 2  # O->I-x, B-PER->I-LOC, ..., <start>->I-x
    assert legend_texts(fig) == ["forbidden by IOB2: never decoded, value meaningless"]
    plain = plot_crf_transitions(np.zeros((5, 5)), np.zeros(5), np.zeros(5), LABELS)
    assert hatched(plain) == [] and legend_texts(plain) == []


def test_softmax_heatmap_hatches_forbidden_predictions_and_greys_unpredicted_rows(tmp_path):
    predicted = [["O", "I-PER", "I-PER"], ["B-LOC", "O"], ["I-LOC"]]  # I-PER after O, and I-LOC at the start
    counts = tag_bigram_counts([[LABELS.index(t) for t in seq] for seq in predicted], len(LABELS))
    assert counts[0, 0] == 1 and counts[0, 4] == 1 and counts[1, 2] == 1 and counts[3, 5] == 1  # <start> row, <end> column
    fig = plot_predicted_transitions(counts, LABELS, allowed_transitions(LABELS, "iob2"), "iob2",
                                     path=str(tmp_path / "softmax.png"))
    assert is_png(tmp_path / "softmax.png")
    assert len(hatched(fig)) == 2  # O -> I-PER and <start> -> I-LOC: forbidden, yet predicted
    assert legend_texts(fig) == ["tag never predicted (no row to show)", "forbidden by IOB2, predicted anyway (2 kinds)"]
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask[2].all()  # B-PER (row 2) was never predicted: grey, not 0 %
    assert not shown.mask[1].any() and shown[1, 2] == 0.5  # O: once to I-PER, once to <end>


def test_f1_by_type_and_trial_curves(tmp_path):
    fig = plot_f1_by_type({"PER": 0.8, "LOC": 0.5}, {"PER": 10, "LOC": 4}, path=str(tmp_path / "f1.png"))
    assert is_png(tmp_path / "f1.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["LOC (n=4)", "PER (n=10)"]
    empty = plot_f1_by_type({}, {})
    assert "no entities" in empty.axes[0].texts[0].get_text()
    curves = plot_trial_curves({"trial 0": [(1, 0.1), (2, 0.3)], "trial 1": [(1, 0.2)]}, "val_entity_f1",
                               best="trial 0", path=str(tmp_path / "curves.png"))
    assert is_png(tmp_path / "curves.png")
    assert sorted(line.get_label() for line in curves.axes[0].get_lines()) == ["trial 0 (best)", "trial 1"]
