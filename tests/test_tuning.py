"""keras-tuner searches with a real SQLite MLflow store (and an `mlflow server` for the distributed test)."""

import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from seqlab.errors import ConfigError
from seqlab.testing import REPO, compose, free_port, tiny_overrides, wait_http

TINY = ["data.limit=50", "words.dim=8", "words.char_filters=4", "tuner.epochs=2", "tuner.patience=2"]
SMALL_SPACE = ["tuner_space@tuner.space=smoke"]


def search_args(tmp_path, tuner="random", *extra):
    return ["+encoder=bilstm", f"+tuner={tuner}", *tiny_overrides(tmp_path, *TINY), *SMALL_SPACE,
            f"tuner.directory={tmp_path}/tuner", *extra]


def search_cfg(tmp_path, tuner="random", *extra):
    return compose(search_args(tmp_path, tuner, *extra))


def run_search(tmp_path, tuner="random", *extra, space=None):
    """A search as the entry point runs it: the config and the overrides it came from."""
    from seqlab.tuning import search

    args = search_args(tmp_path, tuner, *extra)
    cfg = compose(args)
    if space is not None:
        with_space(cfg, space)
    return cfg, search(cfg, str(tmp_path / "tuner"), args)


def trial_runs(client, parent_id):
    exp = client.get_run(parent_id).info.experiment_id
    return [r for r in client.search_runs([exp]) if r.data.tags.get("mlflow.parentRunId") == parent_id]


def with_space(cfg, space: dict):
    from omegaconf import OmegaConf

    cfg.tuner.space = OmegaConf.create(space)
    return cfg


@pytest.mark.parametrize(
    "space, message",
    [
        ({"encoder.unitz": {"type": "int", "min": 1, "max": 4}}, "no encoder option has a key 'unitz'"),
        ({"optimizer.lrate": {"type": "float", "min": 0.1, "max": 0.4}}, "unknown config key 'optimizer.lrate'"),
        ({"encoder": {"type": "choice", "values": ["bilstm", "transformer"]}}, "values must be a choice among .* not transformer"),
        ({"task": {"type": "choice", "values": ["ner", "pos"]}}, "task cannot be searched"),
        ({"encoder": {"type": "choice", "values": ["cnn", "idcnn"]}, "encoder.units": {"type": "int", "min": 4, "max": 8}},
         "none of the searched encoder options \\(cnn, idcnn\\) has a key 'units'"),
        ({"optimizer.lr": {"type": "float", "min": 0, "max": 1, "sampling": "log"}}, "log sampling needs min > 0"),
        ({"encoder.units": {"type": "int", "min": 8, "max": 8}}, "needs numbers min < max"),
        ({"head": {"type": "maybe"}}, "is not one of float, int, choice, bool"),
        ({"head": {"type": "choice", "values": []}}, "values must be a non-empty list"),
        ({"encoder.dropout": {"type": "float", "min": 0.1, "max": 0.5, "stride": 2}}, r"unknown field\(s\) \['stride'\]"),
    ],
)
def test_bad_search_space_is_refused_before_training(tmp_path, space, message):
    from seqlab.config import check_config

    with pytest.raises(ConfigError, match=message):
        check_config(with_space(search_cfg(tmp_path), space))


def test_a_space_value_no_config_accepts_is_one_line_before_training(tmp_path):
    """A user's own space file (on Hydra's search path) whose values make configs the schema refuses."""
    (tmp_path / "conf" / "tuner_space").mkdir(parents=True)
    (tmp_path / "conf" / "tuner_space" / "mine.yaml").write_text(
        "optimizer.lr: {type: float, min: 0.001, max: 0.01}\ntrainer.epochs: {type: choice, values: [1, many]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", "+encoder=cnn", "+tuner=bayesian", f"hydra.searchpath=[file://{tmp_path}/conf]",
         "tuner_space@tuner.space=mine", f"tracking.uri=sqlite:///{tmp_path}/m.db", f"hydra.run.dir={tmp_path}/out"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: tuner.space gives a trial with trainer.epochs=many, which is refused:"), last
    assert "trainer.epochs" in last and not (tmp_path / "m.db").exists()


def test_random_search_records_parent_and_trials(tmp_path, caplog, capsys):
    with caplog.at_level("INFO", logger="seqlab"):
        cfg, result = run_search(tmp_path, "random", "tuner.max_trials=3", "tracking.register_as=wnut-search")
    # The terminal counts: trial k/N as each starts, a line as each ends, a table of the best at the end.
    lines = [r.getMessage() for r in caplog.records]
    assert [ln.split(" (id")[0] for ln in lines if ln.startswith("trial ") and "(id" in ln] == ["trial 1/3", "trial 2/3", "trial 3/3"]
    done = [ln for ln in lines if ln.startswith("trial ") and " done: val_entity_f1 " in ln]
    assert len(done) == 3 and all("best so far" in ln and "elapsed" in ln for ln in done)
    assert "| rank | trial | val_entity_f1 |" in capsys.readouterr().out
    client = MlflowClient(cfg.tracking.uri)
    champion = client.get_model_version_by_alias("wnut-search", "champion")
    assert champion.run_id == result["run_id"]  # the search registers its best model, alias champion
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED"
    trials = trial_runs(client, parent.info.run_id)
    assert len(trials) == 3 and all(t.info.status == "FINISHED" for t in trials)
    for t in trials:
        assert {"encoder.units", "optimizer.lr", "head", "trainer.batch_size", "words.dim"} <= set(t.data.params)
        assert t.data.tags["encoder"] == "bilstm" and t.data.tags["data"] == "wnut16"
        assert t.data.tags["head"] == t.data.params["head"] == t.data.params["head.name"]
        assert "best_val_entity_f1" in t.data.metrics
        history = client.get_metric_history(t.info.run_id, "val_entity_f1")
        assert [m.step for m in history][:1] == [1] and len(history) >= 1
    # The parent tells the truth about the model it holds: the best trial's config, the base config under base.*.
    best = next(t for t in trials if t.data.tags["trial_id"] == parent.data.tags["best_trial_id"])
    assert parent.data.tags["head"] == best.data.tags["head"] == parent.data.params["head.name"]
    assert parent.data.params["encoder.units"] == best.data.params["encoder.units"]
    assert parent.data.params["optimizer.lr"] == best.data.params["optimizer.lr"]
    assert parent.data.params["base.head.name"] == "crf" and parent.data.params["base.encoder.units"] == "100"
    assert parent.data.tags["tuner"] == "random" and parent.data.tags["data"] == "wnut16"
    assert parent.data.metrics["best_val_entity_f1"] == pytest.approx(max(t.data.metrics["best_val_entity_f1"] for t in trials))
    assert "test_entity_f1" in parent.data.metrics
    assert parent.data.params["best.head"] in ("softmax", "crf")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"transition_matrix.png", "config.yaml", "base_config.yaml", "classification_report.txt", "dev_curves.png",
            "best_trials.md", "f1_by_type.png"} <= artifacts
    tags = mlflow.pyfunc.load_model(parent.data.tags["model_uri"]).predict([["Obama", "in", "Paris"]])
    assert len(tags[0]) == 3


def test_hyperband_search_runs_its_brackets(tmp_path):
    cfg, result = run_search(tmp_path, "hyperband", "tuner.epochs=2", "tuner.factor=2", "tracking.log_model=false")
    client = MlflowClient(cfg.tracking.uri)
    trials = trial_runs(client, result["run_id"])
    assert len(trials) >= 3 and all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.params["tuner/epochs"] for t in trials} >= {"1", "2"}  # short rounds, then longer ones
    assert "test_entity_f1" in client.get_run(result["run_id"]).data.metrics


def test_same_seed_gives_same_trial_sequence(tmp_path):
    sequences = []
    for name in ("a", "b"):
        cfg, result = run_search(tmp_path / name, "bayesian", "tuner.max_trials=2", "tuner.epochs=1", "tracking.log_model=false")
        client = MlflowClient(cfg.tracking.uri)
        parent = result["run_id"]
        runs = sorted(trial_runs(client, parent), key=lambda r: int(r.data.tags["trial_id"]))
        sequences.append([(r.data.params["encoder.units"], r.data.params["optimizer.lr"], r.data.params["head"]) for r in runs])
    assert sequences[0] == sequences[1] and len(set(sequences[0])) == 2


def test_nan_trials_are_recorded_failed_and_the_search_goes_on(tmp_path):
    space = {"optimizer.lr": {"type": "choice", "values": [0.002, 1.0e38]},
             "optimizer.name": {"type": "choice", "values": ["sgd", "adam"]}}
    cfg, result = run_search(tmp_path, "grid", "optimizer.clipnorm=null", "tuner.max_trials=4", "tracking.log_model=false",
                             space=space)
    client = MlflowClient(cfg.tracking.uri)
    runs = trial_runs(client, result["run_id"])
    by_values = {(r.data.params["optimizer.lr"], r.data.params["optimizer.name"]): r for r in runs}
    assert len(by_values) == 4
    assert by_values[("0.002", "sgd")].info.status == "FINISHED"
    for name in ("sgd", "adam"):
        assert by_values[("1e+38", name)].info.status == "FAILED" and "NaN" in by_values[("1e+38", name)].data.tags["error"]
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_failed"] == 2


def test_a_space_value_that_fails_check_config_is_refused_before_any_trial(tmp_path):
    from seqlab.tuning import search

    args = search_args(tmp_path, "random")
    cfg = with_space(compose(args), {"optimizer.name": {"type": "choice", "values": ["sgd", "nosuch"]}})
    with pytest.raises(ConfigError, match=r"optimizer.name=nosuch, which is refused: config key optimizer.name='nosuch'"):
        search(cfg, str(tmp_path / "tuner"), args)
    assert not (tmp_path / "mlflow.db").exists()


def finished_trials(db):
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("seqlab")
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id], filter_string="tags.trial_id != ''") if r.info.status == "FINISHED"]


def test_search_stopped_by_sigterm_resumes_without_repeating_finished_trials(tmp_path):
    args = [sys.executable, "-m", "experiments.run", "+encoder=bilstm", "+tuner=random", *tiny_overrides(tmp_path, *TINY),
            *SMALL_SPACE, f"tuner.directory={tmp_path}/tuner", "tuner.max_trials=4", "tracking.log_model=false"]
    # A shell starts background jobs with SIGINT ignored, and children inherit that: undo it for this child.
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(finished_trials(tmp_path / "mlflow.db")) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    seen = len(finished_trials(tmp_path / "mlflow.db"))
    proc.send_signal(signal.SIGTERM)  # what timeout, docker stop, Kubernetes and Slurm send; Ctrl-C does the same
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted (SIGTERM)" in err, (seen, proc.returncode, err[-2000:])
    first = {r.data.tags["trial_id"] for r in finished_trials(tmp_path / "mlflow.db")}
    assert 2 <= len(first) < 4

    resumed = subprocess.run([*args, "tuner.resume=true"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    done = finished_trials(tmp_path / "mlflow.db")
    ids = [r.data.tags["trial_id"] for r in done]
    assert sorted(set(ids)) == ["0", "1", "2", "3"] and len(ids) == 4  # each trial finished exactly once
    parents = {r.data.tags["mlflow.parentRunId"] for r in done}
    assert len(parents) == 1  # the resumed search continues the same parent run
    parent = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(parents.pop())
    assert parent.info.status == "FINISHED" and "test_entity_f1" in parent.data.metrics


def test_distributed_search_chief_two_workers_and_mlflow_server(tmp_path):
    mlflow_port, oracle_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(mlflow_port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    procs = []
    try:
        wait_http(f"http://127.0.0.1:{mlflow_port}/health")
        uri = f"http://127.0.0.1:{mlflow_port}"
        args = [sys.executable, "-m", "experiments.run", "+encoder=bilstm", "+tuner=random", *TINY, *SMALL_SPACE,
                f"tracking.uri={uri}", f"tuner.directory={tmp_path}/tuner", "tuner.max_trials=4", "tuner.epochs=1"]
        base = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(oracle_port)}
        for role in ("chief", "tuner0", "tuner1"):
            procs.append(subprocess.Popen([*args, f"hydra.run.dir={tmp_path}/{role}"], cwd=REPO,
                                          env={**base, "KERASTUNER_TUNER_ID": role},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            if role == "chief":
                time.sleep(3)
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-3000:]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("seqlab")
        runs = client.search_runs([exp.experiment_id])
        parents = [r for r in runs if "trial_id" not in r.data.tags]
        trials = [r for r in runs if "trial_id" in r.data.tags]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert "test_entity_f1" in parents[0].data.metrics
        ids = [t.data.tags["trial_id"] for t in trials]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 4  # every trial exactly once
        assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parents[0].info.run_id}
        assert {t.data.tags["tuner_id"] for t in trials} <= {"tuner0", "tuner1"}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.terminate()
        server.wait(timeout=30)


def test_trial_overrides_swap_a_whole_group_and_drop_keys_the_new_option_lacks():
    from seqlab.search_space import trial_overrides

    base = ["+encoder=bilstm", "encoder.units=50", "encoder.dropout=0.3", "head=crf", "trainer.epochs=2"]
    out = trial_overrides(base, {"encoder": "cnn", "head": "softmax", "optimizer.lr": 0.001, "tuner/epochs": 2})
    assert out == ["encoder.dropout=0.3", "trainer.epochs=2", "+encoder=cnn", "head=softmax", "++optimizer.lr=0.001"]
    cfg = compose(out)
    assert cfg.encoder.name == "cnn" and "units" not in cfg.encoder and cfg.encoder.filters == 200
    assert cfg.encoder.dropout == 0.3 and cfg.head.name == "softmax" and cfg.optimizer.lr == 0.001
    kept = trial_overrides(base, {"encoder": "bigru", "encoder.units": 8, "words.chars": "lstm"})
    cfg = compose(kept)
    assert cfg.encoder.name == "bigru" and cfg.encoder.units == 8 and cfg.words.chars == "lstm"


def test_the_default_space_works_with_every_encoder():
    from seqlab.search_space import left_out, parse_space

    for encoder in ("bilstm", "bigru", "cnn", "idcnn"):
        cfg = compose([f"+encoder={encoder}", "+tuner=random"])
        keys = {d.key for d in parse_space(cfg)}
        recurrent = encoder in ("bilstm", "bigru")
        assert ("encoder.units" in keys) == recurrent and {"optimizer.lr", "encoder.dropout", "head"} <= keys
        assert bool(left_out(cfg, parse_space(cfg))) != recurrent


def test_a_search_over_encoders_and_heads_runs_trials_of_every_kind(tmp_path):
    space = {"encoder": {"type": "choice", "values": ["bilstm", "cnn", "idcnn"]},
             "head": {"type": "choice", "values": ["softmax", "crf"]},
             "encoder.units": {"type": "choice", "values": [4]}}
    cfg, result = run_search(tmp_path, "grid", "tuner.max_trials=20", "tuner.epochs=1", "tracking.log_model=false",
                             "encoder.units=6", "data.limit=30", space=space)
    client = MlflowClient(cfg.tracking.uri)
    trials = trial_runs(client, result["run_id"])
    assert all(t.info.status == "FINISHED" for t in trials), [t.data.tags.get("error") for t in trials]
    kinds = {(t.data.tags["encoder"], t.data.tags["head"]) for t in trials}
    assert kinds == {(e, h) for e in ("bilstm", "cnn", "idcnn") for h in ("softmax", "crf")}
    for t in trials:
        params, encoder = t.data.params, t.data.tags["encoder"]
        assert params["encoder.name"] == encoder and params["head.name"] == t.data.tags["head"]
        if encoder == "bilstm":  # the conditional key: searched for the recurrent encoder only
            assert params["encoder.units"] == "4" and "encoder.filters" not in params
        else:  # the whole group swapped: the cnn's own keys, none of the bilstm's
            assert "encoder.units" not in params and "encoder.recurrent_dropout" not in params
            assert int(params["encoder.filters"]) == (200 if encoder == "cnn" else 300)
    assert len(trials) == 3 * 2  # every encoder x every head, once
