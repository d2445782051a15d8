"""A Hydra multirun is one unit in MLflow: one parent run, every job nested under it.

`SweepCallback` (registered in conf/config.yaml under `hydra.callbacks`) opens
the parent run when the multirun starts, before any job, and writes its id to
`<sweep dir>/mlflow_sweep.json`, where every job reads it: jobs run in this
process (basic launcher) or in others (joblib, Ray) alike. A job on another
machine (Ray on a cluster) finds the parent in the tracking store instead, by
its `hydra.sweep_dir` tag (`join`). When the multirun
ends it prints and logs the table of its jobs and, with `compare.by=[...]`,
the leaderboard (seqlab.leaderboard).

This module imports neither TensorFlow nor MLflow at import time: Hydra
instantiates the callback for every command, `--help` included.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("seqlab")
SWEEP_FILE = "mlflow_sweep.json"
NAMED_BY_TAGS = ("encoder", "head", "data", "+encoder", "+tuner")  # already in every run name


@dataclass(frozen=True)
class Sweep:
    """What a job needs to know of the multirun it belongs to."""

    parent_run_id: str
    name: str
    swept: tuple[str, ...]  # the override keys that take several values
    uri: str = ""  # the tracking store of the parent run


def swept_keys(task_overrides: list[str]) -> tuple[str, ...]:
    """The keys of the overrides that sweep over several values (`head=softmax,crf` -> head)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    return tuple(o.key_or_group for o in parsed if o.is_sweep_override())


def override_key(override: str) -> str:
    """`+encoder=cnn` -> encoder, `head=crf` -> head: the key as Hydra's parser names it."""
    return override.split("=", 1)[0].lstrip("+~")


def sweep_file() -> Path | None:
    """`<sweep dir>/mlflow_sweep.json` of this multirun job, or None (a single run, or composed without Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return None
        return Path(hydra_cfg.sweep.dir) / SWEEP_FILE
    except ValueError:
        return None


def current() -> Sweep | None:
    """The multirun this job belongs to, or None (a single run, or a config composed without Hydra)."""
    path = sweep_file()
    if path is None or not path.exists():
        return None
    info = json.loads(path.read_text())
    return Sweep(info["run_id"], info["name"], tuple(info["swept"]), info.get("uri", ""))


def join(uri: str) -> Sweep | None:
    """This job's multirun, also on a machine that does not share the sweep folder (Hydra's Ray launcher on
    a cluster): there the parent run is found in the tracking store `uri` by its `hydra.sweep_dir` tag, and
    the sweep file is written locally for the rest of the job."""
    path = sweep_file()
    if path is None or path.exists():
        return current()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`hydra.sweep_dir` = '{path.parent}' and tags.`seqlab.sweep` = 'parent'"
    found = client.search_runs(experiments, query, order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        log.warning("no sweep file %s and no parent run with that sweep folder in %s: this job is not nested", path, uri)
        return None
    parent = found[0]
    swept = [k for k in parent.data.tags.get("seqlab.swept", "").split(",") if k]
    _write_sweep_file(path, parent.info.run_id, swept, uri)
    log.info("sweep parent MLflow run %s (found in the tracking store: no shared sweep folder)", parent.info.run_id)
    return current()


def _write_sweep_file(path: Path, run_id: str, swept: list[str], uri: str) -> None:
    """Written whole (jobs that start together may write it at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(json.dumps({"run_id": run_id, "name": str(path.parent), "swept": list(swept), "uri": uri,
                                "started": time.time()}))
    part.replace(path)


def end_parent(status: str) -> None:
    """Mark the current multirun's parent run `status` (FAILED after a user error, KILLED after Ctrl-C).

    A job that stops the whole multirun calls it, so the parent is never left RUNNING. No-op outside a sweep.
    """
    sweep = current()
    if sweep is None:
        return
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(sweep.uri or None).set_terminated(sweep.parent_run_id, status)
    except Exception:  # noqa: BLE001 - never mask the error or the interruption itself
        pass


def job_details() -> dict[str, str]:
    """This Hydra job's overrides and output directory, as run tags (empty without Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except ValueError:
        return {}
    return {"hydra.overrides": " ".join(hydra_cfg.overrides.task)[:5000], "hydra.output_dir": str(hydra_cfg.runtime.output_dir)}


def tagger_name(cfg: DictConfig, data_name: str) -> str:
    """`<encoder>-<head>-<data>`: what a tagger is; the logged model's name and every run name's start."""
    return f"{cfg.encoder.name}-{cfg.head.name}-{data_name}"


def run_name(cfg: DictConfig, data_name: str, sweep: Sweep | None) -> str:
    """`<encoder>-<head>-<data>`, plus what the sweep varies besides those, e.g. `bilstm-crf-wnut16-seed3`."""
    name = tagger_name(cfg, data_name)
    if sweep is None:
        return name
    for key in sweep.swept:
        if key in NAMED_BY_TAGS:
            continue
        value = OmegaConf.select(cfg, key.lstrip("+~"), default=None)
        if isinstance(value, DictConfig):
            value = value.get("name", "")
        name += f"-{key.rpartition('.')[2]}{value}"
    return name


class SweepCallback(Callback):
    """Opens the sweep's parent MLflow run; closes it with a summary (and a leaderboard) at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from seqlab.errors import SeqlabError
        from seqlab.store import check_store

        try:
            check_store(config.tracking.uri, config.tracking.artifact_location)
        except SeqlabError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        from mlflow.tracking import MlflowClient

        from seqlab import tracking

        overrides = list(config.hydra.overrides.task)
        sweep_dir = Path(config.hydra.sweep.dir)
        swept = swept_keys(overrides)
        name = "sweep " + " ".join(o for o in overrides if override_key(o) in swept)
        experiment_id = tracking.use_experiment(config.tracking.uri, config.tracking.experiment,
                                                config.tracking.artifact_location)
        tags = {"sweep": str(sweep_dir), "seqlab.sweep": "parent", "hydra.overrides": " ".join(overrides)[:5000],
                "hydra.sweep_dir": str(sweep_dir), "seqlab.swept": ",".join(swept)[:5000],
                **dict(config.tracking.get("tags") or {}), **tracking.process_tags()}
        run = MlflowClient(config.tracking.uri).create_run(experiment_id, run_name=name[:250], tags=tags)
        _write_sweep_file(sweep_dir / SWEEP_FILE, run.info.run_id, list(swept), config.tracking.uri)
        log.info("sweep parent MLflow run %s (%s)", run.info.run_id, name)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        path = Path(config.hydra.sweep.dir) / SWEEP_FILE
        if not path.exists():
            return
        info = json.loads(path.read_text())
        from seqlab.leaderboard import finish_sweep

        finish_sweep(config, info["run_id"])
