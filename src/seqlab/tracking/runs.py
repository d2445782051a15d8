"""MLflow runs: where they go, how they start and end, and what each records.

Every MLflow call of seqlab goes through seqlab.tracking (a test checks that no other package imports
mlflow). Defaults are MLflow's own: `sqlite:///mlflow.db` with artifacts under ./mlruns, so a plain
`mlflow ui` in the repository root shows the runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from seqlab.config import flatten
from seqlab.runtime.memory import peak_rss_mib
from seqlab.tracking.store import creation_lock, is_disk_full, release_reserve

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # MLflow's schema migrations are not news
logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop lines, twice per run


class _QuietOnFullDisk(logging.Filter):
    """Drops MLflow's own error records (a traceback each) about a full disk: the run ends FAILED and the
    entry point says so in one line that names the path (seqlab.tracking.store.describe_failure)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.levelno >= logging.ERROR and (is_disk_full(error) or "disk is full" in record.getMessage()))


for _handler in logging.getLogger("mlflow").handlers:
    _handler.addFilter(_QuietOnFullDisk())

KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"  # MLflow's record of the experiment type
SYSTEM_METRICS_INTERVAL = 5.0  # seconds between samples of CPU, memory (and GPU) use
_started: list[str] = []  # the run this process's job started last (seqlab.jobs.sweep records a failed job on it)


def client(uri: str | None = None) -> MlflowClient:
    """A client of the tracking store `uri` (default: the current tracking URI)."""
    return MlflowClient(uri)


# ---------------------------------------------------------------- experiments and runs
def use_experiment(uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Point MLflow at `uri` and make `experiment` active (creating it if needed); returns its id.

    A new SQLite store is created under a lock, so processes that start together all get it.
    """
    mlflow.set_tracking_uri(uri)
    with creation_lock(uri):
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            try:
                experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location,
                                                         tags={KIND_TAG: MODEL_TRAINING})
            except MlflowException:  # another process created it first
                found = mlflow.get_experiment_by_name(experiment)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        else:
            experiment_id = found.experiment_id
            if KIND_TAG not in found.tags:  # made before seqlab set it, or by hand
                MlflowClient().set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def process_tags() -> dict[str, str]:
    """Which process writes the run (`python -m experiments.cleanup` marks runs of dead processes KILLED),
    and the CPU threads it was given (`seqlab.threads`: a number, or "default")."""
    from seqlab.runtime import threads

    return {"seqlab.host": socket.gethostname(), "seqlab.pid": str(os.getpid()),
            "seqlab.threads": str(threads.applied or "default")}


def system_metrics(tracking: DictConfig) -> bool:
    """Whether runs record MLflow's system metrics (tracking.system_metrics), sampled every few seconds."""
    enabled = bool(tracking.get("system_metrics", True))
    if enabled and not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL)
    return enabled


@contextlib.contextmanager
def ending(run_id: str):
    """End the active run FINISHED, FAILED (exception, with an `error` tag) or KILLED (Ctrl-C), with the
    process' peak memory so far as the metric `peak_rss_mb`. A store that fails while the run ends (a full
    disk) never hides the exception that ended it."""
    try:
        yield run_id
    except KeyboardInterrupt:
        _end_active("KILLED")
        raise
    except BaseException as e:
        if is_disk_full(e):
            release_reserve()  # SQLite needs room to record even the failure
        _end_active("FAILED", f"{type(e).__name__}: {e}")
        raise
    else:
        _log_peak_rss()
        mlflow.end_run(status="FINISHED")


def _end_active(status: str, error: str | None = None) -> None:
    try:
        if error is not None:
            mlflow.set_tag("error", error.splitlines()[0][:500] if error.strip() else error[:500])
        _log_peak_rss()
        mlflow.end_run(status=status)
    except Exception as e:  # noqa: BLE001 - the store itself may be what failed
        log.warning("could not end the run %s: %s", status, str(e).splitlines()[0] if str(e) else type(e).__name__)
        with contextlib.suppress(Exception):
            mlflow.end_run(status=status)


def _log_peak_rss() -> None:
    try:
        mlflow.log_metric("peak_rss_mb", round(peak_rss_mib(), 1))
    except Exception as e:  # noqa: BLE001 - never let the memory figure hide how the run ended
        log.warning("could not log peak_rss_mb: %s", e)


@contextlib.contextmanager
def training_run(tracking: DictConfig, tags: dict[str, str], run_name: str | None = None,
                 parent_run_id: str | None = None, resume_run_id: str | None = None, nested: bool = False):
    """A run of the `tracking` config's store and experiment that ends FINISHED, FAILED (exception) or KILLED
    (Ctrl-C), never left open; yields its id.

    `tracking.tags` are added to `tags`; `parent_run_id` nests it (a sweep's job, a search's trial);
    `resume_run_id` reopens that run instead of starting one (trainer.resume, tuner.resume).
    """
    if not nested:
        while mlflow.active_run() is not None:  # never nest into a run left over by a previous job
            mlflow.end_run()
    experiment_id = use_experiment(tracking.uri, tracking.experiment, tracking.get("artifact_location"))
    tags = {**tags, **dict(tracking.get("tags") or {}), **process_tags()}
    if resume_run_id:
        run = mlflow.start_run(run_id=resume_run_id, tags=tags, log_system_metrics=system_metrics(tracking))
    else:
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, parent_run_id=parent_run_id,
                               nested=nested, log_system_metrics=False if nested else system_metrics(tracking))
    if not nested:
        _started[:] = [run.info.run_id]
    with ending(run.info.run_id) as run_id:
        yield run_id


def last_started_run() -> str | None:
    """The run the current job started last (None before any)."""
    return _started[0] if _started else None


def forget_started_run() -> None:
    _started.clear()


def active_run_id() -> str:
    return mlflow.active_run().info.run_id


def create_run(tracking: DictConfig, name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
    """A run created in the store without making it active (a sweep's parent); returns its id."""
    experiment_id = use_experiment(tracking.uri, tracking.experiment, tracking.get("artifact_location"))
    tags = {**tags, **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
    return MlflowClient(tracking.uri).create_run(experiment_id, run_name=name, tags=tags).info.run_id


def record_failed_run(uri: str, experiment: str, parent_run_id: str, name: str, error: str, tags: dict[str, str]) -> str:
    """A FAILED run under `parent_run_id` for a job that failed before its own run began."""
    c = MlflowClient(uri)
    experiment_id = c.get_run(parent_run_id).info.experiment_id
    run = c.create_run(experiment_id, run_name=name, tags={**tags, **process_tags(), "mlflow.parentRunId": parent_run_id,
                                                           "error": error[:500]})
    c.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def end_run_quietly(uri: str, run_id: str, status: str) -> None:
    """Mark run `run_id` `status`, never raising (it must not hide the error or interruption that ends it)."""
    with contextlib.suppress(Exception):
        MlflowClient(uri or None).set_terminated(run_id, status)


def set_run_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    c = MlflowClient(uri)
    for key, value in tags.items():
        c.set_tag(run_id, key, value)


def log_to(uri: str, run_id: str, text: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
           figures: dict | None = None) -> None:
    """Texts and figures (artifact name -> content or matplotlib Figure, closed here) and metrics on run
    `run_id`, which need not be active."""
    c = MlflowClient(uri)
    for name, content in (text or {}).items():
        c.log_text(run_id, content, name)
    for name, figure in (figures or {}).items():
        import matplotlib.pyplot as plt

        c.log_figure(run_id, figure, name)
        plt.close(figure)
    for key, value in (metrics or {}).items():
        c.log_metric(run_id, key, value)


def run_name_of(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.run_name


def child_runs(uri: str, parent_run_id: str, status: str | None = None) -> list:
    """The runs nested under `parent_run_id` (optionally only those with `status`)."""
    c = MlflowClient(uri)
    parent = c.get_run(parent_run_id)
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'" + (f" and attributes.status = '{status}'" if status else "")
    return c.search_runs([parent.info.experiment_id], query, max_results=50000)


def end_unfinished_children(uri: str, parent_run_id: str, status: str, why: str) -> int:
    """Mark the nested runs of `parent_run_id` still RUNNING `status`, with a `killed_by` tag; returns how many.

    A resumed search's previous process is gone (kill -9, power loss), and an interrupted multirun's
    job processes were stopped: their runs still RUNNING would never end by themselves.
    """
    c = MlflowClient(uri)
    orphans = child_runs(uri, parent_run_id, "RUNNING")
    for run in orphans:
        c.set_tag(run.info.run_id, "killed_by", why)
        c.set_terminated(run.info.run_id, status=status)
    return len(orphans)


def find_sweep_parent(uri: str, sweep_dir: str) -> tuple[str, list[str]] | None:
    """(run id, swept keys) of the newest sweep parent run whose `hydra.sweep_dir` tag is `sweep_dir`."""
    c = MlflowClient(uri)
    experiments = [e.experiment_id for e in c.search_experiments()]
    query = f"tags.`hydra.sweep_dir` = '{sweep_dir}' and tags.`seqlab.sweep` = 'parent'"
    found = c.search_runs(experiments, query, order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        return None
    return found[0].info.run_id, [k for k in found[0].data.tags.get("seqlab.swept", "").split(",") if k]


def register_champion(uri: str, model_uri: str, name: str) -> str:
    """Register `model_uri` under `name` with the alias `champion`; returns the version."""
    mlflow.set_tracking_uri(uri)
    version = mlflow.register_model(model_uri, name)
    MlflowClient(uri).set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


def set_champion(name: str, version: str | int) -> None:
    """Give registered model `name` version `version` the alias `champion` (the best of a search or sweep)."""
    MlflowClient().set_registered_model_alias(name, "champion", str(version))
    log.info("registered model %s version %s is now models:/%s@champion", name, version, name)


# ---------------------------------------------------------------- what the active run records
def config_params(cfg: DictConfig, prefix: str = "") -> dict[str, str]:
    """The flattened resolved config as MLflow params (strings; None as "null"), keys under `prefix`."""
    return {f"{prefix}{k}": ("null" if v is None else str(v)) for k, v in flatten(cfg).items()}


def log_config(cfg: DictConfig, prefix: str = "", artifact: str = "config.yaml") -> None:
    """Params: the flattened resolved config (keys under `prefix`). Artifact: `artifact` (YAML)."""
    mlflow.log_params(config_params(cfg, prefix))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), artifact)


def log_params(params: dict[str, str]) -> None:
    mlflow.log_params(params)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def log_dict(value: dict, name: str) -> None:
    mlflow.log_dict(value, name)


def log_figure(figure, name: str) -> None:
    mlflow.log_figure(figure, name)


def log_artifact(path: str, folder: str | None = None) -> None:
    mlflow.log_artifact(path, folder)


def log_split(corpus: str, split: str, source: str, digest: str) -> None:
    """Record one data split as an MLflow input; the digest tells runs on different data apart."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    dataset = MetaDataset(LocalArtifactDatasetSource(str(source)), name=f"{corpus}-{split}", digest=digest[:32])
    for attempt in range(3):
        try:
            mlflow.log_input(dataset, context=split)
            return
        except MlflowException as e:
            # Runs that start together on a PostgreSQL-backed server race to create the same dataset row
            # (MLflow checks, then inserts); the loser's retry finds the row and only links it.
            if attempt == 2 or "unique" not in str(e).lower():
                raise
            time.sleep(0.2 * (attempt + 1))


def log_test_scores(scores, prefix: str = "test") -> None:
    """Metrics `{prefix}_<metric>` (entity_f1, entity_precision, ... or accuracy) and, for span tasks,
    `{prefix}_f1_<TYPE>`; the report as classification_report.txt. `scores`: seqlab.evaluation.Scores.
    POS tags (`PRP$`, `(`) are not valid metric names: their accuracies are in the report."""
    metrics = {f"{prefix}_{k}": float(v) for k, v in scores.metrics.items()}
    if scores.per_label_name == "f1":
        metrics.update({f"{prefix}_f1_{kind}": float(v) for kind, v in scores.per_label.items()})
    mlflow.log_metrics(metrics)
    mlflow.log_text(scores.report, "classification_report.txt")


def log_predictions(tokens: list[list[str]], gold: list[list[str]], pred: list[list[str]],
                    name: str = "test_predictions.jsonl") -> None:
    """One JSON line per sentence, {"tokens", "gold", "pred"}: paired comparisons of runs read it back."""
    lines = (json.dumps({"tokens": t, "gold": g, "pred": p}, ensure_ascii=False) for t, g, p in zip(tokens, gold, pred))
    mlflow.log_text("\n".join(lines) + "\n", name)


EPOCH_KEYS = ("loss", "val_loss", "epoch_seconds", "dev_seconds", "dev_decode_seconds", "learning_rate")


def epoch_metrics(monitor: str):
    """A Keras callback that logs each epoch's entries of the logs as metrics of the active run, at step
    epoch (counted from 1): the loss, the dev metric `monitor`, val_loss, epoch_seconds, dev_seconds,
    dev_decode_seconds, and the learning rate under a schedule. It runs after the fit loop's own callbacks
    (stage OBSERVE, the default). Keras is imported here, not with the module: the entry point reads this
    module before TensorFlow loads quietly (seqlab.runtime.quiet)."""
    import keras

    def on_epoch_end(epoch, logs=None):
        logs = logs or {}
        if monitor not in logs:
            return  # a NaN epoch: nothing was scored
        mlflow.log_metrics({k: float(logs[k]) for k in (monitor, *EPOCH_KEYS) if k in logs}, step=epoch + 1)

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of metric `key` of run `run_id`, by step."""
    return sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key))


def has_active_run() -> bool:
    return mlflow.active_run() is not None


def find_runs(experiment_id: str, query: str, newest_first: bool = False, max_results: int = 1000) -> list:
    """Runs of `experiment_id` matching the MLflow filter `query` (the current tracking store)."""
    order = ["attributes.start_time DESC"] if newest_first else None
    return MlflowClient().search_runs([experiment_id], query, order_by=order, max_results=max_results)


def artifact_names(run_id: str, folder: str) -> set[str]:
    """The file names in artifact folder `folder` of run `run_id`."""
    return {os.path.basename(a.path) for a in MlflowClient().list_artifacts(run_id, folder)}


def download_artifact(run_id: str, artifact_path: str, dst: str) -> str:
    """Download artifact `artifact_path` of run `run_id` into folder `dst`; returns the local path."""
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=dst)
