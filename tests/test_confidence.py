"""Confidence on every prediction, against brute force: each token's probability of its tag (the CRF's exact
marginals, the softmax's), each entity's confidence, the n best paths with their probabilities, and the
expected calibration error."""

import itertools

import keras
import numpy as np
import pytest

from seqlab.evaluation.calibration import bin_table, expected_calibration_error

SENTENCES = [["EU", "rejects", "German"], [], ["Paris"], ["the", "New", "York", "Times", "said"]]


@pytest.fixture(scope="module", params=["crf", pytest.param("softmax", marks=pytest.mark.slow)])
def tagger(request, tmp_path_factory):
    from seqlab.jobs.pipeline import prepare
    from seqlab.testing import compose, tiny_overrides

    cfg = compose(tiny_overrides(tmp_path_factory.mktemp(request.param), "+encoder=cnn", "encoder.filters=8",
                                 f"head={request.param}", "data.train_scheme=bioes", "data.limit=40"))
    model = prepare(cfg).model
    rng = np.random.default_rng(0)  # spread the untrained scores so that paths differ clearly
    model.emission_layer.kernel.assign(rng.normal(scale=3.0, size=model.emission_layer.kernel.shape).astype("float32"))
    if request.param == "crf":
        model.head.transitions.assign(rng.normal(size=model.head.transitions.shape).astype("float32"))
    return model


def path_log_probs(model, tokens):
    """Every tag path of one sentence (as id tuples) with its log-probability, enumerated."""
    emissions = keras.ops.convert_to_numpy(model(model.task.encode_tokens([tokens])))[0].astype(np.float64)  # [n, K]
    n, k = emissions.shape
    if model.head_config["name"] == "softmax":
        log_p = emissions - np.log(np.exp(emissions).sum(-1, keepdims=True))
        trans, start, end = np.zeros((k, k)), np.zeros(k), np.zeros(k)
    else:
        log_p = emissions
        trans, start, end = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in model.head.scores())
    paths = np.array(list(itertools.product(range(k), repeat=n)))  # [k^n, n]
    score = start[paths[:, 0]] + end[paths[:, -1]] + log_p[np.arange(n), paths].sum(-1)
    score += trans[paths[:, :-1], paths[:, 1:]].sum(-1) if n > 1 else 0.0
    log_z = np.log(np.exp(score - score.max()).sum()) + score.max()
    return paths, score - log_z


def test_token_scores_entities_and_nbest_match_enumeration(tagger):
    task = tagger.task
    groups = task.output_groups()
    out = tagger.tag(SENTENCES, scores=True, nbest=4)
    assert [o["tags"] for o in out] == tagger.tag(SENTENCES)  # the same decoded tags
    assert out[1] == {"tags": [], "scores": [], "entities": [], "nbest": [{"tags": [], "probability": 1.0}]}
    for tokens, got in zip(SENTENCES[:3], [out[0], out[1], out[2]]):
        if not tokens:
            continue
        paths, log_p = path_log_probs(tagger, tokens)
        p = np.exp(log_p)
        decoded = paths[np.argmax(log_p)]
        assert got["tags"] == task.to_output(task.names(decoded))  # the most probable path, CRF and softmax alike
        for t in range(len(tokens)):  # p(output tag of token t) = the mass of every path whose label at t reads the same
            expected = p[groups[paths[:, t]] == groups[decoded[t]]].sum()
            assert got["scores"][t] == pytest.approx(expected, abs=1e-4)
        for entity in got["entities"]:
            assert entity["score"] == pytest.approx(min(got["scores"][entity["start"]:entity["end"]]), abs=1e-6)
            assert entity["text"] == " ".join(tokens[entity["start"]:entity["end"]])
        best = np.argsort(-log_p)[:4]
        assert [b["probability"] for b in got["nbest"]] == pytest.approx(list(p[best]), rel=1e-3, abs=1e-6)
        assert [b["tags"] for b in got["nbest"]] == [task.to_output(task.names(paths[i])) for i in best]


def test_spans_and_groups_follow_the_output_scheme(tagger):
    task = tagger.task
    labels = list(task.labels)
    groups = task.output_groups()
    reads_as = {"O": "O", "B": "B", "S": "B", "I": "I", "E": "I"}  # BIOES -> IOB2, label by label
    for i, label in enumerate(labels):
        same = [other for other, g in zip(labels, groups) if g == groups[i]]
        assert same == [o for o in labels if reads_as[o[0]] == reads_as[label[0]] and o[2:] == label[2:]], label
    assert any(len([g for g in groups if g == x]) == 2 for x in groups)  # B- and S- (or I- and E-) merged somewhere
    out = tagger.tag([SENTENCES[3]], scores=True)[0]
    assert [(e["type"], e["start"], e["end"]) for e in out["entities"]] == task.output_spans(out["tags"])


def test_a_negative_nbest_is_refused_in_one_line(tagger):
    with pytest.raises(ValueError, match=r"^nbest=-1 is invalid"):
        tagger.tag(SENTENCES, nbest=-1)


def test_expected_calibration_error_known_answers():
    assert expected_calibration_error([], []) == 0.0
    assert expected_calibration_error([1.0, 1.0, 1.0], [True, True, True]) == 0.0
    assert expected_calibration_error([0.9] * 4, [False] * 4) == pytest.approx(0.9)
    conf = [0.85] * 10  # one bin, 80 % right: |0.8 - 0.85|
    assert expected_calibration_error(conf, [True] * 8 + [False] * 2) == pytest.approx(0.05)
    # two bins of different sizes: weights 3/4 and 1/4
    ece = expected_calibration_error([0.95, 0.95, 0.95, 0.05], [True, True, False, False])
    assert ece == pytest.approx(0.75 * abs(2 / 3 - 0.95) + 0.25 * 0.05)
    count, mean_conf, accuracy = bin_table([0.0, 1.0, 0.5], [True, False, True])
    assert count.sum() == 3 and count[0] == 1 and count[-1] == 1 and count[7] == 1  # 1.0 in the last bin
