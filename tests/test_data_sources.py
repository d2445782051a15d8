"""Data sources through the real config: column files, ready-made corpora, Hugging Face datasets on disk."""


import pytest

from seqlab.testing import SHARED_DATA, compose, run_cli
from seqlab.data.corpus import split_stats
from seqlab.data.sources import load_corpus, training_sentences, unseen_tags
from seqlab.errors import DataError

TRAIN = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\n" * 10
TEST = "Paris B-LOC\nis O\n\nJohn B-PER\n"


def conll_cfg(tmp_path, *extra, train=TRAIN, test=TEST):
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(test)
    return compose(["+encoder=cnn", "data=conll", f"data.train={tmp_path}/train.txt", f"data.test={tmp_path}/test.txt", *extra])


def test_conll_without_dev_splits_it_from_train_by_seed(tmp_path):
    cfg = conll_cfg(tmp_path)
    a, b = load_corpus(cfg.data, seed=1), load_corpus(cfg.data, seed=1)
    assert len(a.dev) == 2 and len(a.train) == 18 and a.dev == b.dev
    assert unseen_tags(a) == ["B-LOC"]


def test_bioes_training_scheme_and_max_len_truncate_training_only(tmp_path):
    cfg = conll_cfg(tmp_path, "data.train_scheme=bioes", "data.max_len=3")
    corpus = load_corpus(cfg.data, seed=1)
    from seqlab.data.corpus import Sentence
    from seqlab.task import TaggingTask

    task = TaggingTask("ner", {"words": [], "chars": [], "labels": []}, "bioes")
    train = [Sentence(s.tokens, tuple(task.to_training(s.tags))) for s in training_sentences(corpus.train, 3)]
    assert max(len(s) for s in train) == 3
    assert {t for s in train for t in s.tags} == {"S-ORG", "O", "S-MISC", "B-PER", "E-PER"}
    assert len(corpus.test[0]) == 2  # evaluation data untouched


@pytest.mark.parametrize(
    "name, expected",
    [
        ("conll2003", [(14041, 203621, 23499), (3250, 51362, 5942), (3453, 46435, 5648)]),
        ("wnut17", [(3394, 62730, 1975), (1009, 15733, 836), (1287, 23394, 1079)]),
        ("ncbi_disease", [(5424, 135701, 5134), (923, 23969, 787), (940, 24497, 960)]),
        ("wnut16_official", [(2394, 46469, 1496), (1000, 16261, 661), (3850, 61908, 3473)]),
    ],
)
def test_public_corpora_match_their_source_md_counts(name, expected):
    if not (SHARED_DATA / name.replace("_official", "")).is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    cfg = compose(["+encoder=bilstm", f"data={name}", f"data.root={SHARED_DATA}"])
    corpus = load_corpus(cfg.data, seed=0)
    got = [(s["sentences"], s["tokens"], s["entities"]) for s in (split_stats(x) for x in (corpus.train, corpus.dev, corpus.test))]
    assert got == expected
    if name == "conll2003":  # IOB1 on disk, IOB2 inside: every entity starts with B-
        assert split_stats(corpus.train)["entities_PER"] == 6600
        assert all(not (t.startswith("I-") and (i == 0 or s.tags[i - 1][2:] != t[2:]))
                   for s in corpus.train for i, t in enumerate(s.tags))


def make_hf_dataset(path, class_labels=True):
    import datasets

    names = ["O", "B-PER", "I-PER", "B-LOC"]
    rows = {"tokens": [["Peter", "Blackburn", "went"], ["to", "Paris"]] * 6, "ner_tags": [[1, 2, 0], [0, 3]] * 6}
    if class_labels:
        features = datasets.Features({
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        })
    else:
        rows["ner_tags"] = [[names[i] for i in r] for r in rows["ner_tags"]]
        features = None
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split, "test": split.select(range(4))}).save_to_disk(str(path))


@pytest.mark.parametrize("class_labels", [True, False])
def test_hf_dataset_from_disk_with_class_labels_or_strings(tmp_path, class_labels):
    make_hf_dataset(tmp_path / "ds", class_labels)
    cfg = compose(["+encoder=cnn", "data=hf", f"data.from_disk={tmp_path / 'ds'}"])
    corpus = load_corpus(cfg.data, seed=0)
    assert corpus.test[0].tags == ("B-PER", "I-PER", "O")
    assert len(corpus.dev) == 1 and len(corpus.train) == 11  # no validation split: taken from train


@pytest.mark.slow
def test_hf_hub_unreachable_is_one_clear_line(tmp_path):
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = run_cli("+encoder=cnn", "data=hf", "data.name=no-such-user/no-such-dataset",
                   f"tracking.uri=sqlite:///{tmp_path}/m.db", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot load Hugging Face dataset 'no-such-user/no-such-dataset'")
    assert "data=conll" in lines[-1] and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "train, expected",
    [
        ("EU B-ORG\nrejects O x\n", r"train\.txt:2: expected 2 columns, found 3: 'rejects O x'"),
        ("EU B_ORG\n", r"train\.txt:1: malformed tag 'B_ORG'"),
        ("", r"train\.txt: no sentences"),
    ],
)
def test_bad_files_end_in_one_line_without_traceback(tmp_path, train, expected):
    import re

    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(TEST)
    proc = run_cli("+encoder=cnn", "data=conll", f"data.train={tmp_path}/train.txt", f"data.test={tmp_path}/test.txt",
                   f"tracking.uri=sqlite:///{tmp_path}/m.db")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.search(expected, proc.stderr.strip().splitlines()[-1])
    assert not (tmp_path / "m.db").exists()  # failed before any run was opened


def test_iob2_violation_when_declared(tmp_path):
    cfg = conll_cfg(tmp_path, "data.scheme=iob2", train="EU O\nUnion I-ORG\n")
    with pytest.raises(DataError, match=r"train\.txt:2: tag 'I-ORG' cannot follow 'O' in iob2"):
        load_corpus(cfg.data, seed=0)


@pytest.mark.slow
def test_label_only_in_test_warns_and_counts_as_missed(tmp_path, caplog):
    from seqlab.jobs.pipeline import train

    cfg = conll_cfg(tmp_path, "data.dev_fraction=0.2", "trainer.epochs=1", "tracking.log_model=false",
                    f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/mlruns")
    with caplog.at_level("WARNING"):
        result = train(cfg)
    assert "B-LOC" in caplog.text and "missed" in caplog.text
    import mlflow

    run = mlflow.tracking.MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.data.metrics["test_f1_LOC"] == 0.0
    inputs = run.inputs.dataset_inputs
    assert {i.dataset.name for i in inputs} == {"conll-train", "conll-dev", "conll-test"}
    assert len({i.dataset.digest for i in inputs}) == 3


def test_data_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQLAB_DATA_ROOT", str(tmp_path / "corpora"))
    cfg = compose(["+encoder=bilstm", "data=wnut17"])
    assert cfg.data.train == f"{tmp_path}/corpora/wnut17/train.txt"
    assert compose(["+encoder=bilstm", "data=wnut17", "data.root=/x"]).data.test == "/x/wnut17/test.txt"
