"""Comparisons that can be trusted: fixed splits, sweeps as one unit, leaderboards with tests of known answer."""

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seqlab.testing import compose, migrated_uri, run_cli, run_module, tiny_overrides
from seqlab.compare import stats


# ---------------------------------------------------------------- the split does not move with the seed
def test_seed_varies_the_model_not_the_test_set():
    from seqlab.data import load_corpus
    from seqlab.data.corpus import content_digest

    digests = {seed: content_digest(load_corpus(compose([f"seed={seed}"]).data).test) for seed in (1, 2, 3, 42)}
    assert len(set(digests.values())) == 1
    moved = content_digest(load_corpus(compose(["data.split_seed=7"]).data).test)
    assert moved != digests[1]  # the split is chosen by data.split_seed alone


# ---------------------------------------------------------------- statistics with known answers
def test_welch_gives_one_for_identical_groups_and_small_p_for_separated_ones():
    same = [0.61, 0.63, 0.60, 0.62, 0.64]
    assert stats.welch_t_test(same, list(same)) == pytest.approx(1.0)
    assert stats.welch_t_test(same, [s + 0.10 for s in same]) < 0.001
    assert stats.welch_t_test([0.5, 0.5], [0.5, 0.5]) == 1.0  # no spread, same mean
    assert 0.05 < stats.welch_t_test(same, [0.60, 0.64, 0.61, 0.63, 0.62]) <= 1.0  # overlapping: not significant
    with pytest.raises(ValueError):
        stats.welch_t_test([0.5], [0.6, 0.7])


def test_sentence_counts_sum_to_seqeval_f1():
    from seqeval.metrics import f1_score

    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = [list(rng.choice(tags, size=rng.integers(1, 12))) for _ in range(200)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in g] for g in gold]
    counts = stats.sentence_counts(gold, pred)
    assert counts.shape == (200, 3)
    assert stats.micro_f1(counts) == pytest.approx(f1_score(gold, pred), abs=1e-9)


def test_approximate_randomization_known_answers():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(300, 3)).astype(float)
    assert stats.approximate_randomization(a, a.copy(), resamples=2000) == 1.0  # identical systems
    better = a.copy()
    better[:, 0] += 1  # one more entity found in every sentence
    better[:, 2] = np.maximum(better[:, 2] - 1, 0)
    assert stats.approximate_randomization(a, better, resamples=2000) < 0.01
    noisy = a.copy()
    flip = rng.random(300) < 0.05
    noisy[flip] = a[rng.permutation(300)][flip]
    assert stats.approximate_randomization(a, noisy, resamples=2000) > 0.05  # a few random changes: not significant


# ---------------------------------------------------------------- invalid transitions
def test_invalid_transition_rate_counts_forbidden_bigrams_with_start_and_end():
    from seqlab.evaluation import invalid_transition_rate

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert invalid_transition_rate([["B-PER", "I-PER", "O"], ["O"]], labels, "iob2") == 0.0
    # start -> I-PER, O -> I-LOC, B-PER -> I-LOC: 3 forbidden of 4 + 2 + 3 transitions (start and end included)
    rate = invalid_transition_rate([["I-PER", "O", "I-LOC"], ["B-PER"], ["B-PER", "I-LOC"]], labels, "iob2")
    assert rate == pytest.approx(3 / 9)
    bioes = ["O", "B-X", "I-X", "E-X", "S-X"]
    assert invalid_transition_rate([["B-X", "O"], ["B-X"]], bioes, "bioes") == pytest.approx(2 / 5)  # B -> O, B -> end


# ---------------------------------------------------------------- a sweep is one unit, with a leaderboard
@pytest.mark.slow
def test_multirun_is_one_parent_with_a_leaderboard_that_compare_reproduces(tmp_path):
    """Hydra's basic launcher runs the four jobs in one process: each is its own clean run (its own encoder group,
    nested under the sweep's parent), and the parent's leaderboard is what `experiments.compare` computes again."""
    overrides = tiny_overrides(tmp_path, "words.chars=none", "data.limit=120")
    proc = run_cli("-m", "+encoder=bilstm,cnn", "head=softmax,crf", "compare.by=[head]", "compare.resamples=500",
                   "+tracking.tags.team=nlp", "tracking.register_as=wnut-sweep", *overrides,
                   f"hydra.sweep.dir={tmp_path}/multirun", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    parents = [r for r in runs if r.data.tags.get("seqlab.sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep"] == f"{tmp_path}/multirun"
    assert parent.data.tags["team"] == "nlp"
    jobs = [r for r in runs if r is not parent and r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(jobs) == 4 and len(runs) == 5
    names = sorted(r.info.run_name for r in jobs)
    assert names == sorted(f"{e}-{h}-wnut16" for e in ("bilstm", "cnn") for h in ("softmax", "crf"))
    assert len({r.data.tags["test_digest"] for r in jobs}) == 1  # one data split for every job
    for r in jobs:
        assert r.info.status == "FINISHED" and r.data.tags["team"] == "nlp"
        assert r.data.params["encoder.name"] == r.data.tags["encoder"]  # the group swapped whole, job after job
        assert f"+encoder={r.data.tags['encoder']}" in r.data.tags["hydra.overrides"]
        assert r.data.tags["hydra.output_dir"].startswith(f"{tmp_path}/multirun/")
        assert r.data.tags["sweep"] == f"{tmp_path}/multirun"
        assert "test_invalid_transition_rate" in r.data.metrics
        if r.data.tags["head"] == "crf":
            assert r.data.metrics["test_invalid_transition_rate"] == 0.0  # a constrained CRF cannot break IOB2
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard.png", "sweep_summary.md"} <= artifacts
    board = client.download_artifacts(parent.info.run_id, "leaderboard.md", str(tmp_path))
    text = open(board).read()
    assert "head=crf | 2 |" in text and "head=softmax | 2 |" in text
    assert stats.WELCH in text and stats.RANDOMIZATION in text
    assert "| # | run | overrides |" in proc.stdout  # the job table, printed at the end
    # Only the best job by dev F1 (never by test) is registered, as champion.
    champion = client.get_model_version_by_alias("wnut-sweep", "champion")
    best = max(jobs, key=lambda r: r.data.metrics["best_val_entity_f1"])
    assert champion.run_id == best.info.run_id and len(client.search_model_versions("name='wnut-sweep'")) == 1

    # Each job's test predictions, sentence by sentence.
    preds = client.download_artifacts(jobs[0].info.run_id, "test_predictions.jsonl", str(tmp_path / "p"))
    rows = [json.loads(line) for line in open(preds, encoding="utf-8")]
    assert len(rows) == int(json.load(open(client.download_artifacts(jobs[0].info.run_id, "data_stats.json",
                                                                      str(tmp_path / "s"))))["test"]["sentences"])
    assert all(len(r["tokens"]) == len(r["gold"]) == len(r["pred"]) for r in rows)

    # The same leaderboard from the store alone.
    again = run_module("experiments.compare", "--uri", f"sqlite:///{tmp_path}/mlflow.db", "--sweep", parent.info.run_id,
                       "--by", "head", "--resamples", "500", "--no-log", "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "again" / "leaderboard.md").read_text() == text
    assert (tmp_path / "again" / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from seqlab.compare.cli import main

    assert main(["--uri", f"sqlite:///{tmp_path}/mlflow.db", "--sweep", f"{tmp_path}/multirun", "--by", "head",
                 "--resamples", "500", "--no-log", "--out", str(tmp_path / "by_tag")]) == 0  # found by its sweep tag
    assert (tmp_path / "by_tag" / "leaderboard.md").read_text() == text


def _fake_runs(uri, groups: dict[str, list[float]], digests=None):
    """Runs logged straight into a real store: head tag, test_entity_f1, test digest."""
    from seqlab import tracking

    experiment = tracking.use_experiment(uri, "seqlab")
    client = MlflowClient(uri)
    i = 0
    for head, scores in groups.items():
        for score in scores:
            digest = digests[i] if digests else "d" * 64
            run = client.create_run(experiment, tags={"head": head, "encoder": "cnn", "test_digest": digest})
            client.log_metric(run.info.run_id, "test_entity_f1", score)
            client.set_terminated(run.info.run_id, "FINISHED")
            i += 1
    return client


class Answer:
    """What `python -m experiments.compare` prints and returns, run in this process (seqlab.compare.cli.main)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def compare_cli(capsys):
    from seqlab.compare.cli import main

    def run(uri, *args):
        capsys.readouterr()
        code = main(["--uri", uri, *args])
        out = capsys.readouterr()
        return Answer(code, out.out, out.err)

    return run


def test_compare_refuses_small_groups_and_different_test_sets_in_one_line(tmp_path, compare_cli):
    uri = migrated_uri(tmp_path / "a.db")
    _fake_runs(uri, {"crf": [0.5, 0.52], "softmax": [0.4]})
    proc = compare_cli(uri, "--by", "head")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("error: cannot compare: head=softmax has n=1 run(s); each group needs at least 2 runs "
                                   "(e.g. several seeds: seed=1,2,3) for a mean, a spread and a test")
    uri = migrated_uri(tmp_path / "b.db")
    _fake_runs(uri, {"crf": [0.5, 0.52], "softmax": [0.4, 0.41]}, digests=["a" * 64, "a" * 64, "b" * 64, "b" * 64])
    proc = compare_cli(uri, "--by", "head")
    assert proc.returncode == 2 and proc.stderr.strip().startswith(
        "error: cannot compare: the runs were tested on 2 different test sets (digests aaaaaaaaaaaa, bbbbbbbbbbbb)")


def test_compare_of_an_experiment_logs_a_comparison_run(tmp_path, compare_cli):
    uri = migrated_uri(tmp_path / "c.db")
    client = _fake_runs(uri, {"crf": [0.70, 0.71, 0.72, 0.70], "softmax": [0.60, 0.61, 0.59, 0.60]})
    proc = compare_cli(uri, "--by", "head", "--experiment", "seqlab")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[2].startswith("| head=crf | 4 | 0.7075 |") and lines[3].startswith("| head=softmax | 4 | 0.6000 |")
    assert float(lines[3].split("|")[7]) < 0.001  # Welch p of clearly separated groups
    comparison = [r for r in client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
                  if "seqlab.comparison" in r.data.tags]
    assert len(comparison) == 1 and comparison[0].info.status == "FINISHED"
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard.png"} <= {a.path for a in client.list_artifacts(comparison[0].info.run_id)}


def test_a_job_on_a_machine_without_the_sweep_folder_finds_its_parent_in_the_tracking_store(tmp_path, monkeypatch):
    """Hydra's Ray launcher on a cluster: the job's machine lacks <sweep dir>/mlflow_sweep.json."""
    from seqlab import tracking
    from seqlab.jobs import sweep

    uri = migrated_uri(tmp_path / "m.db")
    experiment_id = tracking.use_experiment(uri, "seqlab")
    client = MlflowClient(uri)
    sweep_dir = tmp_path / "multirun" / "12-00-00"
    client.create_run(experiment_id, tags={"seqlab.sweep": "parent", "seqlab.swept": "seed",
                                           "hydra.sweep_dir": str(tmp_path / "multirun" / "11-00-00")})  # another sweep
    parent = client.create_run(experiment_id, tags={"seqlab.sweep": "parent", "hydra.sweep_dir": str(sweep_dir),
                                                    "seqlab.swept": "head,seed"})
    monkeypatch.setattr(sweep, "sweep_file", lambda: sweep_dir / sweep.SWEEP_FILE)
    found = sweep.join(uri)
    assert found == sweep.Sweep(parent.info.run_id, str(sweep_dir), ("head", "seed"), uri)
    assert sweep.current() == found  # written locally for the rest of the job
    monkeypatch.setattr(sweep, "sweep_file", lambda: tmp_path / "elsewhere" / sweep.SWEEP_FILE)
    assert sweep.join(uri) is None  # no such sweep in the store: the job runs on, not nested
