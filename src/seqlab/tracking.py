"""MLflow tracking: where runs go, and what each training run records.

Defaults are MLflow's own: `sqlite:///mlflow.db` with artifacts under
./mlruns, so a plain `mlflow ui` in the repository root shows the runs.
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
from omegaconf import DictConfig, OmegaConf

from seqlab.config import flatten
from seqlab.store import creation_lock

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # MLflow's schema migrations are not news
logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop lines, twice per run


def use_experiment(uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Point MLflow at `uri` and make `experiment` active (creating it if needed); returns its id.

    A new SQLite store is created under a lock, so processes that start together all get it.
    """
    mlflow.set_tracking_uri(uri)
    with creation_lock(uri):
        return _use_experiment(experiment, artifact_location)


KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"  # MLflow's record of the experiment type


def _use_experiment(experiment: str, artifact_location: str | None) -> str:
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
            mlflow.tracking.MlflowClient().set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def ending(run):
    """End the active `run` FINISHED, FAILED (exception, with an `error` tag) or KILLED (Ctrl-C),
    with the process' peak memory so far as the metric `peak_rss_mb`."""
    try:
        yield run
    except KeyboardInterrupt:
        _log_peak_rss()
        mlflow.end_run(status="KILLED")
        raise
    except BaseException as e:
        mlflow.set_tag("error", f"{type(e).__name__}: {e}"[:500])
        _log_peak_rss()
        mlflow.end_run(status="FAILED")
        raise
    else:
        _log_peak_rss()
        mlflow.end_run(status="FINISHED")


def peak_rss_mb() -> float:
    """This process' peak resident memory so far, in MiB (a multirun's jobs in one process share it)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _log_peak_rss() -> None:
    try:
        mlflow.log_metric("peak_rss_mb", round(peak_rss_mb(), 1))
    except Exception as e:  # never let the memory figure hide how the run ended
        log.warning("could not log peak_rss_mb: %s", e)


SYSTEM_METRICS_INTERVAL = 5.0  # seconds between samples of CPU, memory (and GPU) use


def system_metrics(cfg: DictConfig) -> bool:
    """Whether runs record MLflow's system metrics (tracking.system_metrics), sampled every few seconds."""
    enabled = bool(cfg.tracking.get("system_metrics", True))
    if enabled and not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL)
    return enabled


def process_tags() -> dict[str, str]:
    """Which process writes the run (`python -m experiments.cleanup` marks runs of dead processes KILLED),
    and the CPU threads it was given (`seqlab.threads`: a number, or "default")."""
    from seqlab import threads

    return {"seqlab.host": socket.gethostname(), "seqlab.pid": str(os.getpid()),
            "seqlab.threads": str(threads.applied or "default")}


@contextlib.contextmanager
def training_run(cfg: DictConfig, tags: dict[str, str], run_name: str | None = None, parent_run_id: str | None = None,
                 resume_run_id: str | None = None):
    """An MLflow run that ends FINISHED, FAILED (exception) or KILLED (Ctrl-C), never left open.

    `tracking.tags` from the config are added to `tags`; `parent_run_id` nests it (a sweep's job);
    `resume_run_id` reopens that run instead of starting one (trainer.resume).
    """
    while mlflow.active_run() is not None:  # never nest into a run left over by a previous job
        mlflow.end_run()
    experiment_id = use_experiment(cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.artifact_location)
    tags = {**tags, **dict(cfg.tracking.get("tags") or {}), **process_tags()}
    if resume_run_id:
        run = mlflow.start_run(run_id=resume_run_id, tags=tags, log_system_metrics=system_metrics(cfg))
    else:
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, parent_run_id=parent_run_id,
                               log_system_metrics=system_metrics(cfg))
    with ending(run) as run:
        yield run


def end_orphaned_children(parent_run_id: str) -> int:
    """Mark the nested runs of `parent_run_id` still RUNNING as KILLED; returns how many.

    Used when a search resumes: its previous process is gone (kill -9, power loss),
    so any of its trial runs still RUNNING will never end by themselves.
    """
    client = mlflow.tracking.MlflowClient()
    parent = client.get_run(parent_run_id)
    orphans = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in orphans:
        client.set_tag(run.info.run_id, "killed_by", "tuner.resume: its search process had ended")
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(orphans)


def set_champion(name: str, version: str | int) -> None:
    """Give registered model `name` version `version` the alias `champion` (the best of a search or sweep)."""
    mlflow.tracking.MlflowClient().set_registered_model_alias(name, "champion", str(version))
    log.info("registered model %s version %s is now models:/%s@champion", name, version, name)


def config_params(cfg: DictConfig, prefix: str = "") -> dict[str, str]:
    """The flattened resolved config as MLflow params (strings; None as "null"), keys under `prefix`."""
    return {f"{prefix}{k}": ("null" if v is None else str(v)) for k, v in flatten(cfg).items()}


def log_config(cfg: DictConfig, prefix: str = "", artifact: str = "config.yaml") -> None:
    """Params: the flattened resolved config (keys under `prefix`). Artifact: `artifact` (YAML)."""
    mlflow.log_params(config_params(cfg, prefix))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), artifact)


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


def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics, step=epoch)


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
