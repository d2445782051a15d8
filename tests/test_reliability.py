"""Inputs and disks that misbehave: every token normalised one way, a full disk mid-run, a read-only
experiment folder, a Hugging Face hub that does not answer, cleanup that writes nothing, a POS task on
entity tags. Each ends in one line that names the real cause, and nothing half-written."""

import functools
import os
import subprocess
import time
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqlab.data.tokens import is_ignorable, normalize_token
from seqlab.testing import REPO, compose, free_port, one_error_line, run_cli, run_module, runs_of, write_conll

FIXTURES = REPO / "tests" / "fixtures" / "v0.2"


@functools.cache
def ignorable() -> list[str]:
    """Every code point seqlab drops from tokens (a scan of all of Unicode, ~2 s: done once, when a test needs it)."""
    return [chr(c) for c in range(0x110000) if is_ignorable(chr(c)) and c < 0xE0100]  # the tag block's tail is sparse


WORDS = ["Paris", "EU", "rejects", "German", "call", "@user", "#tbt", "lol", "New", "York", "café", "2016", "!"]


def test_the_ignorable_set_is_unicodes_default_ignorable_code_points():
    assert {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\ufe0f", "\U000e0001"} <= set(ignorable())
    assert not any(is_ignorable(c) for c in "aZ09 -_.@#éß漢\u0301")  # letters, digits, combining marks stay
    assert normalize_token("Pa\u200bris\u200d") == "Paris" and normalize_token("\ufeffParis") == "Paris"
    assert normalize_token("cafe\u0301") == "café" == unicodedata.normalize("NFC", "café")  # composed
    assert normalize_token("\u200b\u200b") == ""


@pytest.fixture(scope="module")
def tagger():
    import seqlab

    return seqlab.load_tagger(FIXTURES / "tagger-0.2-crf.keras")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), min_size=1, max_size=4),
       inserts=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100),
                                  st.deferred(lambda: st.sampled_from(ignorable()))), max_size=8))
def test_inserting_an_ignorable_character_into_any_token_never_changes_a_tag(tagger, sentences, inserts):
    noisy = [list(s) for s in sentences]
    for where, at, char in inserts:
        sentence = noisy[where % len(noisy)]
        i = at % len(sentence)
        cut = at % (len(sentence[i]) + 1)
        sentence[i] = sentence[i][:cut] + char + sentence[i][cut:]
    decomposed = [[unicodedata.normalize("NFD", t) for t in s] for s in sentences]
    assert tagger.tag(noisy) == tagger.tag(sentences) == tagger.tag(decomposed)


def test_the_reader_keeps_what_tag_sees(tmp_path):
    from seqlab.data.conll import read_conll

    path = write_conll(tmp_path / "t.txt", [[("\ufeffPa\u200bris", "B-LOC"), ("cafe\u0301", "O"), ("\u2060EU", "B-ORG")]])
    assert read_conll(path)[0].tokens == ("Paris", "café", "EU")


def test_a_pos_task_on_entity_tags_warns_once(tmp_path, caplog):
    from seqlab.jobs.reading import prepare_data

    rows = [[("EU", "B-ORG"), ("rejects", "O"), ("Peter", "B-PER"), ("Blackburn", "I-PER")]] * 5
    files = {s: write_conll(tmp_path / f"{s}.txt", rows) for s in ("train", "dev", "test")}
    cfg = compose(["data=conll", *(f"data.{k}={v}" for k, v in files.items())])
    with caplog.at_level("WARNING", logger="seqlab"):
        prepare_data(cfg.data, "pos")
        prepare_data(cfg.data, "ner")
    warned = [r.getMessage() for r in caplog.records if "look like IOB chunk tags" in r.getMessage()]
    assert len(warned) == 1 and "task=ner or task=chunk" in warned[0]


def test_an_unreachable_hub_is_given_up_within_seconds(monkeypatch):
    from seqlab.data.huggingface import hub_reachable

    for endpoint in ("http://hub.invalid", f"http://127.0.0.1:{free_port()}"):  # no such name; nothing listening
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        started = time.monotonic()
        assert hub_reachable(timeout=1.0) is False
        assert time.monotonic() - started < 2.5


@pytest.mark.slow
def test_an_offline_hub_dataset_fails_in_one_line_without_retries(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://hub.invalid")  # as offline: the name does not resolve
    started = time.monotonic()
    proc = run_cli("+encoder=cnn", "data=hf", "data.name=nonexistent/dataset", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                   f"hydra.run.dir={tmp_path}/out", env=env, timeout=120)
    seconds = time.monotonic() - started
    assert proc.returncode == 2 and seconds < 20, (seconds, proc.stderr[-2000:])
    line = one_error_line(proc)
    assert line.startswith("error: cannot load Hugging Face dataset 'nonexistent/dataset'") and "local cache" in line
    assert "Retrying" not in proc.stderr and "retry" not in proc.stderr.lower()


@pytest.mark.slow
def test_cleanup_dry_run_writes_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_module("experiments.cleanup", "--dry-run", cwd=empty, env={**os.environ, "MLFLOW_TRACKING_URI": ""},
                      timeout=120)
    assert proc.returncode == 0 and "no tracking store" in proc.stdout, proc.stderr[-2000:]
    assert list(empty.iterdir()) == []  # neither mlflow.db nor mlruns/
    from seqlab import tracking

    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store}/mlflow.db"
    experiment = tracking.use_experiment(uri, "seqlab", str(store / "artifacts"))
    tracking.client(uri).create_run(experiment, tags={"seqlab.host": os.uname().nodename, "seqlab.pid": "999999999"})
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    proc = run_module("experiments.cleanup", "--dry-run", "--uri", uri, cwd=store, timeout=120)
    assert proc.returncode == 0 and "would mark KILLED" in proc.stdout, proc.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == before  # not a byte written, nothing created


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_ends_the_run_failed_in_one_line_with_nothing_half_written(tmpfs, tmp_path):
    disk = tmpfs("small", size="3m")
    uri = f"sqlite:///{disk}/mlflow.db"
    proc = run_cli("+encoder=cnn", "data.limit=200", "trainer.epochs=1", "trainer.jit_compile=false",
                   "tracking.system_metrics=false", f"tracking.uri={uri}", f"tracking.artifact_location={disk}/mlruns",
                   f"hydra.run.dir={tmp_path}/out", timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_error_line(proc)
    assert str(disk) in line and "no space left on the device" in line, line
    assert len(proc.stderr.strip().splitlines()) < 40  # no cascade of tracebacks
    (run,) = runs_of(uri)
    assert run.info.status == "FAILED" and "error" in run.data.tags  # never left RUNNING
    assert not list(disk.rglob("tagger.keras")) and not list(disk.rglob("MLmodel"))  # no half-written model
    assert not list(disk.rglob(".seqlab-reserve-*"))
    dry = run_module("experiments.cleanup", "--dry-run", "--uri", uri, timeout=120)  # works on the full disk
    assert dry.returncode == 0 and "0 run(s) to mark" in dry.stdout, dry.stderr[-2000:]


@pytest.mark.slow
def test_a_read_only_experiment_folder_is_named_before_tensorflow_loads(tmpfs, tmp_path):
    from seqlab import tracking

    disk = tmpfs("artifacts")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.use_experiment(uri, "seqlab", str(disk / "seqlab"))
    (disk / "seqlab").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    started = time.monotonic()
    proc = run_cli("+encoder=cnn", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path}/out", timeout=120)
    assert proc.returncode == 2 and time.monotonic() - started < 30
    assert one_error_line(proc) == (f"error: cannot write to the artifact folder {disk}/seqlab of experiment 'seqlab': "
                                    "read-only file system")
    assert runs_of(uri) == []
