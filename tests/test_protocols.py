"""Evaluation protocols: cross-validation folds, nested training fractions, class weights, and what a sweep's
parent shows of them (tested on real files, real MLflow stores and a real multirun)."""

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from seqlab.compare import leaderboard, stats, summaries
from seqlab.config import compose
from seqlab.config.class_weights import resolve
from seqlab.data import load_corpus
from seqlab.data.corpus import content_digest
from seqlab.data.folds import fold_of, train_subset
from seqlab.errors import ConfigError, DataError
from seqlab.testing import migrated_uri, run_cli, tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def data_config(**overrides):
    return compose([*(f"data.{k}={v}" for k, v in overrides.items()), "+encoder=cnn"]).data


def as_counter(sentences):
    return Counter((s.tokens, s.tags) for s in sentences)


# ---------------------------------------------------------------- folds
def write_documents(path: Path, docs: int, seed: int = 0) -> list[list[tuple[str, ...]]]:
    """A CoNLL file of `docs` documents (-DOCSTART-) of 1-5 sentences each; returns each document's sentences."""
    rng = np.random.default_rng(seed)
    lines, out = [], []
    for d in range(docs):
        lines += ["-DOCSTART- O", ""]
        sentences = []
        for s in range(int(rng.integers(1, 6))):
            tokens = tuple(f"{path.stem}{d}s{s}w{i}" for i in range(int(rng.integers(1, 5))))
            lines += [f"{t} {'B-PER' if i == 0 else 'O'}" for i, t in enumerate(tokens)] + [""]
            sentences.append(tokens)
        out.append(sentences)
    path.write_text("\n".join(lines) + "\n")
    return out


def test_folds_are_disjoint_complete_keep_documents_whole_and_leave_test_alone(tmp_path):
    train_docs = write_documents(tmp_path / "train.txt", 17, seed=1)
    write_documents(tmp_path / "dev.txt", 5, seed=2)
    write_documents(tmp_path / "test.txt", 4, seed=3)
    files = dict(source="conll", train=tmp_path / "train.txt", dev=tmp_path / "dev.txt", test=tmp_path / "test.txt")
    plain = load_corpus(data_config(**files))
    pool = as_counter(plain.train + plain.dev)
    corpora = [load_corpus(data_config(**files, folds=4, fold=i)) for i in range(4)]
    devs = [as_counter(c.dev) for c in corpora]
    for c, dev in zip(corpora, devs):
        assert as_counter(c.train) + dev == pool  # each fold's train and dev are train+dev
        assert content_digest(c.test) == content_digest(plain.test)
    assert sum(devs, Counter()) == pool  # the dev folds cover train+dev once: disjoint and complete
    for a, b in itertools.combinations(devs, 2):
        assert not set(a) & set(b)
    fold_of_sentence = {s.tokens: i for i, c in enumerate(corpora) for s in c.dev}
    for doc in train_docs:  # every document lies in one fold
        assert len({fold_of_sentence[tokens] for tokens in doc}) == 1
    again = load_corpus(data_config(**files, folds=4, fold=2))
    assert [s.tokens for s in again.dev] == [s.tokens for s in corpora[2].dev]  # fixed by data.split_seed
    other = load_corpus(data_config(**files, folds=4, fold=2, split_seed=7))
    assert as_counter(other.dev) != devs[2]
    with pytest.raises(DataError, match=r"data.folds=40 needs at least 40 documents in train\+dev; there are 22"):
        load_corpus(data_config(**files, folds=40, fold=0))


def test_sentence_folds_of_the_embedded_corpus_are_balanced():
    corpora = [load_corpus(data_config(folds=5, fold=i)) for i in range(5)]
    sizes = [len(c.dev) for c in corpora]
    assert max(sizes) - min(sizes) <= 1
    plain = load_corpus(data_config())
    assert sum(sizes) == len(plain.train) + len(plain.dev)
    assert sum((as_counter(c.dev) for c in corpora), Counter()) == as_counter(plain.train + plain.dev)
    assert fold_of(plain.train, 3, 0).tolist() == fold_of(plain.train, 3, 0).tolist()


# ---------------------------------------------------------------- fractions
def test_training_fractions_are_nested_seeded_subsets():
    full = load_corpus(data_config())
    parts = {f: load_corpus(data_config(train_fraction=f)) for f in (0.1, 0.3, 0.6)}
    for f, corpus in parts.items():
        assert len(corpus.train) == round(f * len(full.train))
        assert content_digest(corpus.dev) == content_digest(full.dev) and content_digest(corpus.test) == content_digest(full.test)
    small, middle, large = (as_counter(parts[f].train) for f in (0.1, 0.3, 0.6))
    assert not small - middle and not middle - large and not large - as_counter(full.train)
    assert [s.tokens for s in parts[0.3].train] == [s.tokens for s in load_corpus(data_config(train_fraction=0.3)).train]
    assert as_counter(load_corpus(data_config(train_fraction=0.3, split_seed=5)).train) != middle
    assert len(train_subset(full.train[:3], 0.01, 0)) == 1  # never empty


# ---------------------------------------------------------------- class weights
LABELS = ["O", "B-PER", "I-PER", "B-LOC"]


def test_class_weights_resolve_balanced_and_mappings_by_tag_or_type():
    tags = [["O", "O", "O", "B-PER", "I-PER"], ["O", "O", "B-LOC", "O"]]
    balanced = resolve("balanced", LABELS, tags)
    counts = Counter(t for s in tags for t in s)
    assert np.isclose(sum(balanced[LABELS.index(t)] * n for t, n in counts.items()) / sum(counts.values()), 1.0)
    assert balanced[0] < balanced[1] == balanced[2] == balanced[3]
    assert resolve({"O": 0.5, "PER": 3}, LABELS, tags) == [0.5, 3.0, 3.0, 1.0]
    assert resolve({"B-LOC": 2}, LABELS, tags) == [1.0, 1.0, 1.0, 2.0]
    assert resolve(None, LABELS, tags) is None
    with pytest.raises(ConfigError, match="'ORG', which is neither a tag nor an entity type.*types: LOC, PER"):
        resolve({"ORG": 2}, LABELS, tags)
    with pytest.raises(ConfigError, match="head.class_weights='often' is invalid"):
        resolve("often", LABELS, tags)


def test_weighted_softmax_loss_is_the_weighted_cross_entropy():
    from seqlab.model.heads import SoftmaxHead

    rng = np.random.default_rng(0)
    emissions = rng.normal(size=(2, 3, 4)).astype("float32")
    tags = np.array([[0, 1, 2], [3, 0, 0]])
    mask = np.array([[True, True, True], [True, True, False]])
    weights = [0.5, 2.0, 3.0, 1.5]
    head = SoftmaxHead(LABELS, class_weights=weights)
    log_p = emissions - np.log(np.exp(emissions).sum(-1, keepdims=True))
    terms = [-weights[tags[b, t]] * log_p[b, t, tags[b, t]] for b in range(2) for t in range(3) if mask[b, t]]
    assert np.isclose(float(head.loss(emissions, tags, mask)), sum(terms) / 5, rtol=1e-5)
    assert head.get_config()["class_weights"] == weights


def test_weighted_crf_loss_is_softmax_margin_by_enumeration():
    import keras

    from seqlab.model.heads import CRFHead

    k, weights = 4, [0.3, 2.0, 1.0, 0.7]
    head = CRFHead(LABELS, scheme=None, reduction="sum", class_weights=weights)
    head.build()
    rng = np.random.default_rng(3)
    for w in head.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    emissions = rng.normal(size=(2, 4, k)).astype("float32")
    tags = np.array([[1, 2, 0, 3], [0, 3, 0, 0]])
    mask = np.arange(4)[None] < np.array([[4], [2]])
    tr, st, en = (keras.ops.convert_to_numpy(w) for w in (head.transitions, head.start_transitions, head.end_transitions))

    def score(e, path):
        return st[path[0]] + en[path[-1]] + sum(e[t, y] for t, y in enumerate(path)) + sum(tr[a, b] for a, b in zip(path, path[1:]))

    expected = 0.0
    for b, length in enumerate(mask.sum(1)):
        gold = tuple(tags[b, :length])
        costs = [score(emissions[b], p) + sum(weights[g] for g, y in zip(gold, p) if g != y)
                 for p in itertools.product(range(k), repeat=int(length))]
        expected += np.logaddexp.reduce(costs) - score(emissions[b], gold)
    assert np.isclose(float(head.loss(emissions, tags, mask)), expected, rtol=1e-5)
    plain = CRFHead(LABELS, scheme=None, reduction="sum")
    plain.build()
    for mine, theirs in zip(plain.weights, head.weights):
        mine.assign(theirs)
    assert float(plain.loss(emissions, tags, mask)) < expected  # the margin only adds
    assert (keras.ops.convert_to_numpy(head.decode(emissions, mask)) == keras.ops.convert_to_numpy(plain.decode(emissions, mask))).all()


# ---------------------------------------------------------------- what a leaderboard and a parent show
def log_runs(client, experiment_id, rows):
    """Finished runs with the given tags, params and metrics in a real store; returns them as searched."""
    for tags, params, metrics in rows:
        run = client.create_run(experiment_id, tags=tags)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id, "FINISHED")
    return client.search_runs([experiment_id], max_results=100)


def test_compare_pairs_runs_by_fold_and_a_learning_curve_compares_its_largest_fraction(tmp_path):
    client = MlflowClient(migrated_uri(tmp_path / "mlflow.db"))
    experiment = client.create_experiment("seqlab", artifact_location=str(tmp_path / "mlruns"))
    # crf beats softmax by 0.01 on every fold, though the folds differ by far more: paired, that is clear
    fold_level = [0.40, 0.60, 0.50, 0.70, 0.45]
    rows = [({"head": head, "fold": str(f), "folds": "5", "test_digest": "t"}, {"data.train_fraction": "1.0"},
             {"test_entity_f1": level + (0.01 if head == "crf" else 0.0), "best_val_entity_f1": level,
              "test_f1_PER": level - (0.02 if head == "crf" else 0.0)})
            for f, level in enumerate(fold_level) for head in ("crf", "softmax")]
    runs = log_runs(client, experiment, rows)
    board = leaderboard.build(client, runs, ["head"])
    assert board.across == "folds" and board.groups[0].label == "head=crf"
    assert board.groups[1].p_seeds < 0.001 < stats.welch_t_test(board.groups[0].scores, board.groups[1].scores)
    assert "p (folds)" in board.markdown() and stats.PAIRED_FOLDS in board.markdown()
    types = leaderboard.per_type(client, runs, ["head"])
    assert "| PER | head=softmax | 5 | 0.5300 | 0.1204 | best |" in types and "| PER | head=crf | 5 | 0.5100 |" in types
    table, metrics = summaries.cross_validation(runs, ["head"], "best_val_entity_f1", "test_entity_f1")
    assert "| head=crf | 0,1,2,3,4 | 5 | 0.5300 ± 0.1204 | 0.5400 ± 0.1204 |" in table and metrics == {}
    table, metrics = summaries.cross_validation([r for r in runs if r.data.tags["head"] == "crf"], [],
                                                "best_val_entity_f1", "test_entity_f1")
    assert metrics["cv_folds"] == 5 and np.isclose(metrics["cv_test_mean"], 0.54)
    # a learning curve: the leaderboard compares the largest fraction, the curve has one point per fraction
    curve = [({"head": head}, {"data.train_fraction": str(f)}, {"test_entity_f1": f / 2 + seed / 100 + (head == "crf") / 10,
                                                                "train_sentences": 100 * f})
             for f in (0.25, 0.5, 1.0) for seed in (1, 2, 3) for head in ("crf", "softmax")]
    other = client.create_experiment("curve")
    runs = log_runs(client, other, curve)
    board = leaderboard.build(client, runs, ["head"])
    assert [len(g.scores) for g in board.groups] == [3, 3] and np.isclose(board.groups[0].mean, 0.62)
    assert "compared at data.train_fraction=1 only (6 of 18 runs)" in board.markdown()
    points = summaries.learning_curve(runs, ["head"], "test_entity_f1")
    assert sorted((p.group, p.fraction) for p in points) == [(g, f) for g in ("head=crf", "head=softmax") for f in (0.25, 0.5, 1.0)]
    row = next(p for p in points if p.group == "head=softmax").row
    assert row["n"] == 3 and np.isclose(row["mean"], 0.145) and row["train_fraction"] == 0.25 and row["ci95_low"] < row["mean"] < row["ci95_high"]
    assert np.isclose(row["ci95_high"] - row["mean"], 4.303 * 0.01 / np.sqrt(3), rtol=1e-3)  # t(0.975, 2) = 4.303
    mapped = log_runs(client, client.create_experiment("weights"), [({}, {"head.class_weights.O": "0.5"}, {})])
    assert leaderboard.group_value(mapped[0], "head.class_weights") == "{O: 0.5}"  # a mapping is logged per entry
    figure = summaries.plot_curve(points, "test_entity_f1")
    assert len(figure.axes[0].lines) == 2 and [len(line.get_xdata()) for line in figure.axes[0].lines] == [3, 3]


@pytest.mark.slow
def test_a_cross_validated_learning_curve_multirun_logs_folds_fractions_and_their_summaries(tmp_path):
    overrides = tiny_overrides(tmp_path, "words.chars=none", "data.limit=60", "head=softmax")
    proc = run_cli("-m", "+encoder=cnn", "data.folds=2", "data.fold=range(2)", "data.train_fraction=0.5,1.0",
                   *overrides, f"hydra.sweep.dir={tmp_path}/multirun", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("seqlab.sweep") == "parent")
    jobs = [r for r in runs if r is not parent]
    assert len(jobs) == 4 and all(r.info.status == "FINISHED" for r in jobs)
    assert sorted((r.data.tags["fold"], r.data.params["data.train_fraction"]) for r in jobs) == \
        [("0", "0.5"), ("0", "1.0"), ("1", "0.5"), ("1", "1.0")]
    assert len({r.data.tags["test_digest"] for r in jobs}) == 1
    assert len({r.data.tags["dev_digest"] for r in jobs}) == 2  # one dev set per fold, whatever the fraction
    for fold in ("0", "1"):
        half, full = (next(r for r in jobs if r.data.tags["fold"] == fold and r.data.params["data.train_fraction"] == f)
                      for f in ("0.5", "1.0"))
        assert half.data.metrics["train_sentences"] == round(full.data.metrics["train_sentences"] / 2)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"cross_validation.md", "learning_curve.png", "learning_curve.csv"} <= artifacts
    assert parent.data.metrics["cv_folds"] == 2
    assert np.isclose(parent.data.metrics["cv_test_mean"],
                      np.mean([r.data.metrics["test_entity_f1"] for r in jobs if r.data.params["data.train_fraction"] == "1.0"]))
    csv_text = Path(client.download_artifacts(parent.info.run_id, "learning_curve.csv", str(tmp_path))).read_text()
    assert [line.split(",")[1] for line in csv_text.splitlines()[1:]] == ["0.5", "1.0"]
    assert "cross-validation:" in proc.stdout and "learning curve (test_entity_f1):" in proc.stdout
