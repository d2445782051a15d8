"""keras-tuner searches configured by Hydra, with every trial recorded in MLflow.

One parent MLflow run per search; one nested run per trial (its hyperparameters,
the task's dev metric per epoch, e.g. `val_entity_f1`, its status). The
objective is that metric, from the head's own decoder. Every trial's config is
composed by Hydra from the search's overrides plus the trial's values
(`seqlab.config.overrides.trial_overrides`) and checked like any run's config.
After the search the best trial's model is evaluated on test and logged on the
parent run.

Distributed: with KERASTUNER_TUNER_ID=chief (plus KERASTUNER_ORACLE_IP/PORT) this
process serves the oracle, creates the parent run and, when all trials are done,
evaluates the best one; workers (KERASTUNER_TUNER_ID=tuner0, ...) run trials.
Nothing goes through a shared disk: each process has its own tuner directory.
A worker finds the parent run in MLflow by its tags (the search's project and
the oracle's address, `seqlab.oracle`), and logs each trial's best checkpoint
as an artifact of the trial's run (`tuner_checkpoint/`), from which the chief
(best trial) and other workers (Hyperband's continued trials) fetch it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path

import keras_tuner as kt
from omegaconf import DictConfig, OmegaConf

from seqlab import tracking
from seqlab.config import choices
from seqlab.config.search_space import Dimension, left_out, parse_space
from seqlab.config.trials import check_trials, trial_config
from seqlab.errors import ConfigError
from seqlab.jobs import sweep
from seqlab.jobs.pipeline import (Data, Prepared, evaluate, prepare, prepare_data, record_data, record_evaluation,
                                  record_model, run_tags, training_batches, training_callbacks)
from seqlab.runtime import interrupts
from seqlab.runtime.memory import long_lived_frozen, peak_rss_mib, resident_mib
from seqlab.training import FitOptions, fit

log = logging.getLogger("seqlab")
PARENT_FILE = "mlflow_parent_run_id"  # the chief's own record, for tuner.resume=true
CHECKPOINT_ARTIFACTS = "tuner_checkpoint"  # a distributed trial's best weights, for the chief and other workers


class TaggerHyperModel(kt.HyperModel):
    """Composes each trial's config from the search's overrides and the trial's values, builds and trains it.

    `base`: the search's own Hydra overrides (e.g. ["+encoder=bilstm", "+tuner=random", "trainer.epochs=3"]).
    """

    def __init__(self, cfg: DictConfig, base: list[str], space: list[Dimension], data: Data | None = None):
        super().__init__(name="seqlab_tagger")
        self.cfg, self.base, self.space = cfg, list(base), space
        self.monitor = choices.TASKS[cfg.task.name].monitor
        self._data: dict[str, Data] = {}  # the data and task configs, as YAML -> the data they read
        if data is not None:
            self._data[self._data_key(cfg)] = data

    @staticmethod
    def _data_key(cfg: DictConfig) -> str:
        return OmegaConf.to_yaml(cfg.data) + OmegaConf.to_yaml(cfg.task)

    def values(self, hp) -> dict:
        """The trial's active values (keys under an inactive conditional scope are left out)."""
        values = {dim.key: dim.register(hp) for dim in self.space}
        return {k: v for k, v in values.items() if v is not None}

    def config_for(self, values: dict) -> DictConfig:
        """The composed and checked config of a trial with these values."""
        return trial_config(self.base, values)

    def trial_config(self, hp) -> DictConfig:
        return self.config_for(self.values(hp))

    def data_for(self, cfg: DictConfig) -> Data:
        key = self._data_key(cfg)
        if key not in self._data:
            self._data[key] = prepare_data(cfg.data, cfg.task.name)
        return self._data[key]

    def check_space(self) -> None:
        """Compose and check every dimension at its extremes before any training: one line per bad value
        (composed once per process: the entry point checked them before the backend started)."""
        check_trials(self.base, self.space)

    def build(self, hp):
        cfg = self.trial_config(hp)
        # keras-tuner calls this right after clear_session and a garbage collection; prepare resets Keras again
        return prepare(cfg, self.data_for(cfg)).model

    def fit(self, hp, model, *args, epochs=None, callbacks=None, initial_epoch=0, **kwargs):
        cfg = self.trial_config(hp)
        data = self.data_for(cfg)
        own = training_callbacks(model, data, cfg.trainer, cfg.optimizer.lr, cfg.optimizer.get("lr_decay", 0.0))
        if tracking.has_active_run():
            own.append(tracking.epoch_metrics(self.monitor))
        options = FitOptions(epochs or cfg.tuner.epochs, self.monitor, cfg.tuner.patience, cfg.trainer.min_delta,
                             cfg.trainer.get("progress"), initial_epoch)
        batches = training_batches(model, data, cfg.trainer.batch_size, cfg.seed, cfg.words.get("singleton_unk", 0.0))
        outcome = fit(model, batches, options, [*own, *(callbacks or [])])
        if not outcome.scored:
            raise kt.errors.FailedTrialError("the loss became NaN or infinite in the first epoch")
        best = max(outcome.best_score, 0.0)
        if tracking.has_active_run():
            tracking.log_metrics({f"best_{self.monitor}": best, "best_epoch": outcome.best_epoch})
        return {self.monitor: best}


class MLflowTrials:
    """Mixin for a keras-tuner Tuner: each trial runs inside a nested MLflow run."""

    parent_run_id: str = ""
    experiment_id: str | None = None
    distributed: bool = False  # checkpoints go through MLflow: no process reads another's tuner directory

    def __init__(self, *args, **kwargs):
        self.trained_here: set[str] = set()  # trials this process trained: their checkpoints on disk are this search's
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        interrupts.check()
        hp = trial.hyperparameters
        if self.distributed and "tuner/trial_id" in hp.values:  # Hyperband continues a trial run elsewhere
            self.fetch_checkpoint(hp.values["tuner/trial_id"])
        try:
            trial_cfg = self.hypermodel.trial_config(hp)
        except ConfigError as e:
            log.warning("trial %s failed: its config is refused: %s", trial.trial_id, e)
            raise kt.errors.FailedTrialError(str(e)) from None
        corpus = self.hypermodel.data_for(trial_cfg).corpus
        tags = {"trial_id": trial.trial_id, "tuner_id": str(self.tuner_id), "seqlab.search": self.project_name,
                "task": trial_cfg.task.name, "encoder": trial_cfg.encoder.name, "head": trial_cfg.head.name,
                "data": corpus.name}
        started = time.perf_counter()
        try:
            with tracking.training_run(trial_cfg.tracking, tags, run_name=f"trial {trial.trial_id}",
                                       parent_run_id=self.parent_run_id, nested=True):
                self._announce(trial)
                params = tracking.config_params(trial_cfg)
                params.update({k: str(v) for k, v in hp.values.items() if k not in params})  # head, tuner/epochs, ...
                tracking.log_params(params)
                result = super().run_trial(trial, *args, **kwargs)
                tracking.log_metrics({"trial_seconds": time.perf_counter() - started, "rss_mb": resident_mib() or 0.0,
                                      "peak_rss_mb": peak_rss_mib()})
                if self.distributed:
                    self._log_checkpoint(trial.trial_id)
                    self.trained_here.add(trial.trial_id)
        except Exception as e:
            log.warning("trial %s failed: %s: %s", trial.trial_id, type(e).__name__, e)
            raise
        return result

    def _checkpoint_files(self, trial_id: str) -> list[Path]:
        return [Path(self._get_checkpoint_fname(trial_id)), Path(self._get_build_config_fname(trial_id))]

    def _log_checkpoint(self, trial_id: str) -> None:
        """Log the trial's best checkpoint (weights, build config) on its active MLflow run."""
        for path in self._checkpoint_files(trial_id):
            if path.exists():
                tracking.log_artifact(str(path), CHECKPOINT_ARTIFACTS)

    def fetch_checkpoint(self, trial_id: str) -> None:
        """Put trial `trial_id`'s checkpoint into this process' own tuner directory, from its MLflow run, unless
        this process trained it (a file left there by an earlier search with the same trial ids is replaced)."""
        files = self._checkpoint_files(trial_id)
        if trial_id in self.trained_here and files[0].exists():
            return
        runs = tracking.find_runs(self.experiment_id, f"tags.mlflow.parentRunId = '{self.parent_run_id}' "
                                  f"and tags.trial_id = '{trial_id}' and attributes.status = 'FINISHED'", max_results=1)
        if not runs:
            raise RuntimeError(f"trial {trial_id} has no FINISHED run under MLflow run {self.parent_run_id}")
        files[0].parent.mkdir(parents=True, exist_ok=True)
        logged = tracking.artifact_names(runs[0].info.run_id, CHECKPOINT_ARTIFACTS)
        for f in files:
            f.unlink(missing_ok=True)
            if f.name in logged:
                got = tracking.download_artifact(runs[0].info.run_id, f"{CHECKPOINT_ARTIFACTS}/{f.name}",
                                                 str(f.parent / "download"))
                Path(got).replace(f)
        shutil.rmtree(files[0].parent / "download", ignore_errors=True)
        if not files[0].exists():
            raise RuntimeError(f"trial {trial_id}'s run {runs[0].info.run_id} has no {CHECKPOINT_ARTIFACTS}/{files[0].name}")

    def _announce(self, trial) -> None:
        """`trial k/N (id i): values`; k is the trial's number in the whole search (resumed ones included)."""
        if not hasattr(self, "search_started"):
            self.search_started = time.perf_counter()
        values = ", ".join(f"{k}={v}" for k, v in self.hypermodel.values(trial.hyperparameters).items())
        log.info("trial %s/%s (id %s): %s", trial_number(trial), self._planned(), trial.trial_id, values)

    def _planned(self) -> int | str:
        return planned_trials(self.oracle, self.hypermodel.cfg.tuner)

    def on_trial_end(self, trial):
        """After each trial: its score, the best so far and the elapsed time, one line.

        On a worker of a distributed search the oracle is a client of the chief's: it is asked, never read.
        """
        super().on_trial_end(trial)
        try:
            best = self.oracle.get_best_trials(1)
            ended = self.oracle.get_trial(trial.trial_id) if trial.score is None else trial
        except Exception:  # noqa: BLE001 - progress lines must never fail a trial
            best, ended = [], trial
        score = "failed" if ended.status != "COMPLETED" or ended.score is None else f"{ended.score:.4f}"
        best_score = f"{best[0].score:.4f}" if best and best[0].score is not None else "-"
        elapsed = time.perf_counter() - getattr(self, "search_started", time.perf_counter())
        log.info("trial %s/%s done: %s %s, best so far %s, elapsed %s", trial_number(trial), self._planned(),
                 self.hypermodel.monitor, score, best_score, _clock(elapsed))


def trial_number(trial) -> int | str:
    """1-based number of a keras-tuner trial (its ids count from 0)."""
    return int(trial.trial_id) + 1 if str(trial.trial_id).isdigit() else "?"


def planned_trials(oracle, tuner_cfg) -> int | str:
    """How many trials the search will run: tuner.max_trials, or Hyperband's brackets summed (one iteration)."""
    if tuner_cfg.name == "hyperband":
        if not hasattr(oracle, "_get_num_brackets"):
            return "?"  # a worker's client of the chief's oracle
        brackets = oracle._get_num_brackets()
        return sum(oracle._get_size(b, r) for b in range(brackets) for r in range(oracle._get_num_rounds(b)))
    return tuner_cfg.max_trials


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def best_trials_table(oracle, objective: str, n: int = 5) -> str:
    """Markdown table of the n best completed trials: rank, id, score (`objective`), hyperparameters."""
    done = sorted((t for t in oracle.trials.values() if t.status == "COMPLETED" and t.score is not None),
                  key=lambda t: -t.score)[:n]
    keys = sorted({k for t in done for k in t.hyperparameters.values if not k.startswith("tuner/")})
    lines = [f"| rank | trial | {objective} | " + " | ".join(keys) + " |", "|---" * (3 + len(keys)) + "|"]
    for rank, t in enumerate(done, 1):
        values = [str(t.hyperparameters.values.get(k, "")) for k in keys]
        lines.append(f"| {rank} | {t.trial_id} | {t.score:.4f} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def make_tuner(cfg: DictConfig, hypermodel: TaggerHyperModel, directory: str, worker: bool = False):
    """The keras-tuner Tuner for `tuner.name`, with MLflow trial runs. Workers never wipe the shared directory."""
    t = cfg.tuner
    base = choices.choose(choices.TUNERS, t.name, "tuner.name").load()
    tracked = type(f"Tracked{base.__name__}", (MLflowTrials, base), {})
    common = dict(
        hypermodel=hypermodel, objective=kt.Objective(hypermodel.monitor, direction="max"), directory=directory,
        project_name=t.project, overwrite=not (t.resume or worker), seed=cfg.seed,
        executions_per_trial=t.executions_per_trial, max_consecutive_failed_trials=max(t.max_trials, 3),
    )
    if t.name == "hyperband":
        return tracked(max_epochs=t.epochs, factor=t.factor, hyperband_iterations=1, **common)
    return tracked(max_trials=t.max_trials, **common)


def search(cfg: DictConfig, directory: str, overrides: list[str], data: Data | None = None) -> dict:
    """Run the search described by `cfg.tuner`; returns the best dev and test scores.

    `overrides`: the command-line overrides `cfg` was composed from; each trial adds its values to them.
    `data`: the data of `cfg`, when the caller read it already.
    """
    space = parse_space(cfg, grid=cfg.tuner.name == "grid")
    for line in left_out(cfg, space):
        log.info(line)
    hypermodel = TaggerHyperModel(cfg, overrides, space, data)
    hypermodel.check_space()
    data = hypermodel.data_for(cfg)
    with long_lived_frozen():  # each trial's collections skip the imports and the corpus
        return _search(cfg, directory, hypermodel, data)


def _search(cfg: DictConfig, directory: str, hypermodel: TaggerHyperModel, data: Data) -> dict:
    """`search` once its space is checked and its data read: a worker's trials, or the chief's (or a lone
    process') parent run, its trials and the best trial's test scores."""
    role = os.environ.get("KERASTUNER_TUNER_ID", "")
    Path(directory, cfg.tuner.project).mkdir(parents=True, exist_ok=True)
    parent_file = Path(directory, cfg.tuner.project, PARENT_FILE)
    experiment_id = tracking.use_experiment(cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.artifact_location)

    if role and role != "chief":  # a worker: attach trials to the chief's parent run
        tuner = make_tuner(cfg, hypermodel, directory, worker=True)
        tuner.oracle.get_space()  # waits until the chief serves the oracle; its parent run exists by then
        tuner.parent_run_id = find_parent(experiment_id, cfg.tuner.project, oracle_address())
        tuner.experiment_id, tuner.distributed = experiment_id, True
        log.info("worker %s: trials go under MLflow run %s", role, tuner.parent_run_id)
        tuner.search(epochs=cfg.tuner.epochs, verbose=0)
        return {}

    tags = {**run_tags(cfg, data.corpus), "tuner": cfg.tuner.name, "seqlab.search": cfg.tuner.project}
    if role == "chief":
        tags["seqlab.oracle"] = oracle_address()  # how workers find this search's parent run
    resume_id = parent_file.read_text().strip() if cfg.tuner.resume and parent_file.exists() else None
    if resume_id:
        killed = tracking.end_unfinished_children(cfg.tracking.uri, resume_id, "KILLED",
                                                  "tuner.resume: its search process had ended")
        if killed:
            log.info("resume: marked %d trial run(s) left RUNNING by a killed search as KILLED", killed)
        tags.pop("sweep", None)
    in_sweep = sweep.current()
    with tracking.training_run(cfg.tracking, tags, run_name=f"search {cfg.tuner.name} {cfg.encoder.name}",
                               parent_run_id=in_sweep.parent_run_id if in_sweep is not None and not resume_id else None,
                               resume_run_id=resume_id) as parent_id:
        if not resume_id:
            tracking.log_config(cfg, prefix="base.", artifact="base_config.yaml")  # the best trial's config comes last
        tuner = make_tuner(cfg, hypermodel, directory)  # a fresh search wipes the project directory first
        tuner.parent_run_id, tuner.experiment_id = parent_id, experiment_id
        tuner.distributed = role == "chief"
        parent_file.parent.mkdir(parents=True, exist_ok=True)
        parent_file.write_text(parent_id)  # for tuner.resume=true
        log.info("search %s: up to %s trials, objective %s; parent MLflow run %s; tuner files in %s",
                 cfg.tuner.name, planned_trials(tuner.oracle, cfg.tuner), hypermodel.monitor, parent_id, directory)
        tuner.search(epochs=cfg.tuner.epochs, verbose=0)
        return _log_best(cfg, tuner, hypermodel)


def _log_best(cfg: DictConfig, tuner, hypermodel: TaggerHyperModel) -> dict:
    """Evaluate the best trial's model on test and log it all on the parent run."""
    monitor = hypermodel.monitor
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    statuses = [t.status for t in tuner.oracle.trials.values()]
    _log_trial_curves(tuner.parent_run_id, tuner.experiment_id, monitor,
                      best_id=tuner.oracle.get_best_trials(1)[0].trial_id if completed else None)
    table = best_trials_table(tuner.oracle, monitor)
    print(f"\nsearch {cfg.tuner.name}: {len(completed)} of {len(statuses)} trials completed; the best:\n{table}", flush=True)
    tracking.log_text(table, "best_trials.md")
    tracking.log_metrics({"trials_completed": len(completed), "trials_failed": statuses.count("FAILED")})
    if not completed:
        raise RuntimeError("no trial completed; see the FAILED trial runs in MLflow for their errors")
    best = tuner.oracle.get_best_trials(1)[0]
    values = hypermodel.values(best.hyperparameters)
    best_cfg = hypermodel.config_for(values)
    if tuner.distributed:  # a worker trained it: its checkpoint comes from the trial's MLflow run
        tuner.fetch_checkpoint(best.trial_id)
    with warnings.catch_warnings():  # the checkpoint's optimizer state is not needed for evaluation
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.load_model(best)  # rebuilds with the trial's config and loads its best epoch
    log.info("best trial %s: %s %.4f with %s", best.trial_id, monitor, best.score, values)
    # The parent describes the model it holds: the best trial's config and tags (the base config is under base.*).
    tracking.log_config(best_cfg)
    tracking.log_params({f"best.{k}": v for k, v in values.items()})
    tracking.set_tags({"best_trial_id": best.trial_id, "encoder": best_cfg.encoder.name, "head": best_cfg.head.name})
    tracking.log_metrics({f"best_{monitor}": best.score})
    data = hypermodel.data_for(best_cfg)
    record_data(data, Prepared(data, model))
    result = evaluate(model, data.corpus.test, best_cfg.trainer.eval_batch_size)
    record_evaluation(model, result, best_cfg)
    if best_cfg.tracking.log_model:
        register_as = None if sweep.current() is not None else cfg.tracking.get("register_as")  # a sweep registers its best
        version = record_model(model, sweep.tagger_name(best_cfg, data.corpus.name),
                               [list(s.tokens) for s in data.corpus.test[:2]], register_as)
        if version:
            tracking.set_champion(register_as, version)
    metric = choices.TASKS[cfg.task.name].metric
    return {"monitor": monitor, monitor: best.score, f"test_{metric}": result.scores.metrics[metric],
            "run_id": tracking.active_run_id()}


def _log_trial_curves(parent_run_id: str, experiment_id: str, monitor: str, best_id: str | None) -> None:
    """dev_curves.png on the parent: each trial's dev metric (`monitor`) per epoch, the best trial thick."""
    from seqlab.evaluation.figures import plot_trial_curves

    trials = tracking.find_runs(experiment_id, f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=5000)
    curves = {f"trial {r.data.tags.get('trial_id', '?')}": tracking.metric_history(r.info.run_id, monitor) for r in trials}
    best = f"trial {best_id}" if best_id is not None else None
    tracking.log_figure(plot_trial_curves(curves, monitor, best), "dev_curves.png")


def oracle_address() -> str:
    """The chief oracle's `ip:port`, from KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT."""
    return f"{os.environ.get('KERASTUNER_ORACLE_IP', '')}:{os.environ.get('KERASTUNER_ORACLE_PORT', '')}"


def find_parent(experiment_id: str, project: str, oracle: str, timeout: float = 120.0) -> str:
    """The RUNNING parent run of the search `project` whose chief serves `oracle`: the newest, if a killed
    chief left an older one RUNNING (the chief creates its run before it serves the oracle)."""
    query = f"tags.`seqlab.search` = '{project}' and tags.`seqlab.oracle` = '{oracle}' and attributes.status = 'RUNNING'"
    deadline = time.monotonic() + timeout
    while True:
        runs = tracking.find_runs(experiment_id, query, newest_first=True, max_results=1)
        if runs:
            return runs[0].info.run_id
        if time.monotonic() > deadline:
            raise RuntimeError(f"no RUNNING search {project!r} with oracle {oracle} in MLflow after {timeout:.0f}s: "
                               "give the workers the chief's tracking.uri, tracking.experiment and tuner.project")
        time.sleep(1.0)
