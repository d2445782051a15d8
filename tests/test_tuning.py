"""keras-tuner searches with a real SQLite MLflow store (the distributed search is in test_server.py)."""

import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from seqlab.errors import ConfigError
from seqlab.testing import compose, migrated_uri, run_cli, start_module, tiny_overrides

TINY = ["data.limit=50", "words.dim=8", "words.char_filters=4", "tuner.epochs=2", "tuner.patience=2"]
SMALL_SPACE = ["tuner_space@tuner.space=smoke"]


def search_args(tmp_path, tuner="random", *extra):
    return ["+encoder=bilstm", f"+tuner={tuner}", *tiny_overrides(tmp_path, *TINY), *SMALL_SPACE,
            f"tuner.directory={tmp_path}/tuner", *extra]


def search_cfg(tmp_path, tuner="random", *extra):
    return compose(search_args(tmp_path, tuner, *extra))


def run_search(tmp_path, tuner="random", *extra, space=None):
    """A search as the entry point runs it: the config and the overrides it came from."""
    from seqlab.jobs.search import search

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
        ({"encoder": {"type": "choice", "values": ["bilstm", "lstm"]}}, "values must be a choice among .* not lstm"),
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


@pytest.mark.slow
def test_a_space_value_no_config_accepts_is_one_line_before_training(tmp_path):
    """A user's own space file (on Hydra's search path) whose values make configs the schema refuses."""
    (tmp_path / "conf" / "tuner_space").mkdir(parents=True)
    (tmp_path / "conf" / "tuner_space" / "mine.yaml").write_text(
        "optimizer.lr: {type: float, min: 0.001, max: 0.01}\ntrainer.epochs: {type: choice, values: [1, many]}\n")
    proc = run_cli("+encoder=cnn", "+tuner=bayesian", f"hydra.searchpath=[file://{tmp_path}/conf]",
                   "tuner_space@tuner.space=mine", f"tracking.uri=sqlite:///{tmp_path}/m.db", f"hydra.run.dir={tmp_path}/out",
                   timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: tuner.space gives a trial with trainer.epochs=many, which is refused:"), last
    assert "trainer.epochs" in last and not (tmp_path / "m.db").exists()
    assert "data wnut16" not in proc.stdout + proc.stderr  # refused before the data is read (and the backend starts)


@pytest.mark.slow
def test_random_search_records_parent_and_trials(tmp_path, caplog, capsys):
    with caplog.at_level("INFO", logger="seqlab"):
        cfg, result = run_search(tmp_path, "random", "tuner.max_trials=2", "tuner.epochs=1",
                                 "tracking.register_as=wnut-search")
    # The terminal counts: trial k/N as each starts, a line as each ends, a table of the best at the end.
    lines = [r.getMessage() for r in caplog.records]
    assert [ln.split(" (id")[0] for ln in lines if ln.startswith("trial ") and "(id" in ln] == ["trial 1/2", "trial 2/2"]
    done = [ln for ln in lines if ln.startswith("trial ") and " done: val_entity_f1 " in ln]
    assert len(done) == 2 and all("best so far" in ln and "elapsed" in ln for ln in done)
    assert "| rank | trial | val_entity_f1 |" in capsys.readouterr().out
    client = MlflowClient(cfg.tracking.uri)
    champion = client.get_model_version_by_alias("wnut-search", "champion")
    assert champion.run_id == result["run_id"]  # the search registers its best model, alias champion
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED"
    trials = trial_runs(client, parent.info.run_id)
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
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


@pytest.mark.slow
def test_hyperband_search_runs_its_brackets(tmp_path):
    cfg, result = run_search(tmp_path, "hyperband", "tuner.epochs=2", "tuner.factor=2", "tracking.log_model=false")
    client = MlflowClient(cfg.tracking.uri)
    trials = trial_runs(client, result["run_id"])
    assert len(trials) >= 3 and all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.params["tuner/epochs"] for t in trials} >= {"1", "2"}  # short rounds, then longer ones
    assert "test_entity_f1" in client.get_run(result["run_id"]).data.metrics


@pytest.mark.slow
def test_same_seed_gives_same_trial_sequence(tmp_path):
    """The oracle of a seqlab search (its real space, from the real hypermodel), driven with the same scores:
    the same seed proposes the same trials, another seed others. No training: only the proposals matter."""
    from seqlab.config.search_space import parse_space
    from seqlab.jobs.search import TaggerHyperModel, make_tuner

    sequences = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        args = search_args(tmp_path / name, "bayesian", "tuner.max_trials=5", f"seed={seed}")
        cfg = compose(args)
        hypermodel = TaggerHyperModel(cfg, args, parse_space(cfg, grid=False))
        oracle = make_tuner(cfg, hypermodel, str(tmp_path / name / "tuner")).oracle
        proposed = []
        for i in range(5):
            trial = oracle.create_trial("tuner0")
            proposed.append(tuple(sorted(hypermodel.values(trial.hyperparameters).items())))
            oracle.update_trial(trial.trial_id, {hypermodel.monitor: 0.1 * i})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        sequences.append(proposed)
    assert sequences[0] == sequences[1] and len(set(sequences[0])) == 5
    assert sequences[2] != sequences[0]


@pytest.mark.slow
def test_nan_trials_are_recorded_failed_and_the_search_goes_on(tmp_path):
    space = {"optimizer.lr": {"type": "choice", "values": [1.0e38, 0.002]}}
    cfg, result = run_search(tmp_path, "grid", "optimizer.name=sgd", "optimizer.clipnorm=null", "tuner.max_trials=2",
                             "tracking.log_model=false", space=space)
    client = MlflowClient(cfg.tracking.uri)
    runs = trial_runs(client, result["run_id"])
    by_lr = {r.data.params["optimizer.lr"]: r for r in runs}
    assert len(by_lr) == 2
    assert by_lr["1e+38"].info.status == "FAILED" and "NaN" in by_lr["1e+38"].data.tags["error"]
    assert by_lr["0.002"].info.status == "FINISHED"  # the search went on after the failed trial
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_failed"] == 1


def test_a_space_value_that_fails_check_config_is_refused_before_any_trial(tmp_path):
    from seqlab.jobs.search import search

    args = search_args(tmp_path, "random")
    cfg = with_space(compose(args), {"optimizer.name": {"type": "choice", "values": ["sgd", "nosuch"]}})
    with pytest.raises(ConfigError, match=r"optimizer.name=nosuch, which is refused: config key optimizer.name='nosuch'"):
        search(cfg, str(tmp_path / "tuner"), args)
    # tiny_overrides gives an empty store: it must stay empty
    assert MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_experiment_by_name("seqlab") is None


def finished_trials(db):
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("seqlab")
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id], filter_string="tags.trial_id != ''") if r.info.status == "FINISHED"]


@pytest.mark.slow
def test_search_stopped_by_sigterm_resumes_without_repeating_finished_trials(tmp_path):
    args = ["+encoder=bilstm", "+tuner=random", *tiny_overrides(tmp_path, *TINY), *SMALL_SPACE,
            f"tuner.directory={tmp_path}/tuner", "tuner.max_trials=2", "tracking.log_model=false"]
    proc = start_module("experiments.run", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(finished_trials(tmp_path / "mlflow.db")) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    seen = len(finished_trials(tmp_path / "mlflow.db"))
    proc.send_signal(signal.SIGTERM)  # what timeout, docker stop, Kubernetes and Slurm send; Ctrl-C does the same
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted (SIGTERM)" in err, (seen, proc.returncode, err[-2000:])
    first = {r.data.tags["trial_id"] for r in finished_trials(tmp_path / "mlflow.db")}
    assert len(first) == 1

    resumed = run_cli(*args, "tuner.resume=true", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    done = finished_trials(tmp_path / "mlflow.db")
    ids = [r.data.tags["trial_id"] for r in done]
    assert sorted(set(ids)) == ["0", "1"] and len(ids) == 2  # each trial finished exactly once
    parents = {r.data.tags["mlflow.parentRunId"] for r in done}
    assert len(parents) == 1  # the resumed search continues the same parent run
    parent = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(parents.pop())
    assert parent.info.status == "FINISHED" and "test_entity_f1" in parent.data.metrics


def test_trial_overrides_swap_a_whole_group_and_drop_keys_the_new_option_lacks():
    from seqlab.config.overrides import trial_overrides

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
    from seqlab.config.search_space import left_out, parse_space

    for encoder in ("bilstm", "bigru", "cnn", "idcnn"):
        cfg = compose([f"+encoder={encoder}", "+tuner=random"])
        keys = {d.key for d in parse_space(cfg)}
        recurrent = encoder in ("bilstm", "bigru")
        assert ("encoder.units" in keys) == recurrent and {"optimizer.lr", "encoder.dropout", "head"} <= keys
        assert bool(left_out(cfg, parse_space(cfg))) != recurrent


@pytest.mark.slow
def test_a_search_over_encoders_and_heads_runs_trials_of_every_kind(tmp_path):
    space = {"encoder": {"type": "choice", "values": ["bilstm", "idcnn"]},
             "head": {"type": "choice", "values": ["softmax", "crf"]},
             "encoder.units": {"type": "choice", "values": [4]}}
    cfg, result = run_search(tmp_path, "grid", "tuner.max_trials=20", "tuner.epochs=1", "tracking.log_model=false",
                             "encoder.units=6", "data.limit=30", space=space)
    client = MlflowClient(cfg.tracking.uri)
    trials = trial_runs(client, result["run_id"])
    assert all(t.info.status == "FINISHED" for t in trials), [t.data.tags.get("error") for t in trials]
    kinds = {(t.data.tags["encoder"], t.data.tags["head"]) for t in trials}
    assert kinds == {(e, h) for e in ("bilstm", "idcnn") for h in ("softmax", "crf")}
    for t in trials:
        params, encoder = t.data.params, t.data.tags["encoder"]
        assert params["encoder.name"] == encoder and params["head.name"] == t.data.tags["head"]
        if encoder == "bilstm":  # the conditional key: searched for the recurrent encoder only
            assert params["encoder.units"] == "4" and "encoder.filters" not in params
        else:  # the whole group swapped: the cnn's own keys, none of the bilstm's
            assert "encoder.units" not in params and "encoder.recurrent_dropout" not in params
            assert int(params["encoder.filters"]) == 300  # idcnn's own default (bilstm has no filters)
    assert len(trials) == 2 * 2  # every encoder x every head, once


def test_a_distributed_trial_checkpoint_comes_from_its_mlflow_run_not_a_stale_file(tmp_path):
    """A worker's own tuner directory may hold a file of an earlier search with the same trial id: the
    checkpoint of this search's trial is the one logged on its MLflow run."""
    from seqlab import tracking
    from seqlab.jobs.search import CHECKPOINT_ARTIFACTS, MLflowTrials

    class Worker(MLflowTrials):
        def _get_checkpoint_fname(self, trial_id):
            return str(tmp_path / "tuner" / f"trial_{trial_id}" / "checkpoint.weights.h5")

        def _get_build_config_fname(self, trial_id):
            return str(tmp_path / "tuner" / f"trial_{trial_id}" / "build_config.json")

    experiment_id = tracking.use_experiment(migrated_uri(tmp_path / "m.db"), "seqlab")
    logged = tmp_path / "logged" / "checkpoint.weights.h5"
    logged.parent.mkdir()
    logged.write_bytes(b"this search's weights")
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        with mlflow.start_run(nested=True, tags={"trial_id": "0003"}):
            mlflow.log_artifact(str(logged), CHECKPOINT_ARTIFACTS)
    worker = Worker()
    worker.parent_run_id, worker.experiment_id, worker.distributed = parent.info.run_id, experiment_id, True
    stale = Path(worker._get_checkpoint_fname("0003"))
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier search's weights")
    worker.fetch_checkpoint("0003")
    assert stale.read_bytes() == b"this search's weights"
    assert not (stale.parent / "download").exists()
    worker.trained_here.add("0003")  # what this process trained itself stays as it is
    stale.write_bytes(b"trained here")
    worker.fetch_checkpoint("0003")
    assert stale.read_bytes() == b"trained here"
    with pytest.raises(RuntimeError, match="trial 0009 has no FINISHED run"):
        worker.fetch_checkpoint("0009")
