"""A Hydra multirun is one unit in MLflow: one parent run, every job nested under it, every job recorded.

`SweepCallback` (registered in conf/config.yaml under `hydra.callbacks`) opens the parent run when
the multirun starts, before any job, and writes its id to `<sweep dir>/mlflow_sweep.json`, where
every job reads it: jobs run in this process (basic launcher) or in others (joblib, Ray) alike. A job
on another machine (Ray on a cluster) finds the parent in the tracking store instead, by its
`hydra.sweep_dir` tag (`join`).

A job that fails ends FAILED with its one-line error as the `error` tag (a job refused before its run
began gets a FAILED run of its own), and the next jobs run. When the multirun ends, the table of its
jobs (with their statuses) is printed and logged, the leaderboard follows with `compare.by=[...]`,
and the parent ends FINISHED, or FAILED with the tag `jobs_failed` when any job failed; the command
then exits 2 if every failure was a user error, else 1 (`exit_status`). Ctrl-C or SIGTERM to a
multirun whose jobs run in other processes (joblib) reaches them too: each ends its run KILLED, the
parent waits for them (then kills what is left), ends every unfinished job run and itself KILLED.

This module imports neither TensorFlow nor MLflow at import time: Hydra instantiates the callback for
every command, `--help` included.
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

from seqlab.config.overrides import override_key, swept_keys

log = logging.getLogger("seqlab")
SWEEP_FILE = "mlflow_sweep.json"
NAMED_BY_TAGS = ("encoder", "head", "data", "+encoder", "+tuner")  # already in every run name
JOB_STATUS_TAG = "seqlab.exit_status"  # on a failed job: 2 for a user error, 1 otherwise
_outcome: dict = {}  # what the multirun of this process ended with: {"failed": n, "status": code}
_last_sweep_file: Path | None = None  # the sweep file of the multirun this process opened


@dataclass(frozen=True)
class Sweep:
    """What a job needs to know of the multirun it belongs to."""

    parent_run_id: str
    name: str
    swept: tuple[str, ...]  # the override keys that take several values
    uri: str = ""  # the tracking store of the parent run


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
    from seqlab import tracking

    parent = tracking.find_sweep_parent(uri, str(path.parent))
    if parent is None:
        log.warning("no sweep file %s and no parent run with that sweep folder in %s: this job is not nested", path, uri)
        return None
    run_id, swept = parent
    _write_sweep_file(path, run_id, swept, uri)
    log.info("sweep parent MLflow run %s (found in the tracking store: no shared sweep folder)", run_id)
    return current()


def _write_sweep_file(path: Path, run_id: str, swept: list[str], uri: str) -> None:
    """Written whole (jobs that start together may write it at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(json.dumps({"run_id": run_id, "name": str(path.parent), "swept": list(swept), "uri": uri,
                                "started": time.time(), "pid": os.getpid()}))
    part.replace(path)


def in_worker_process() -> bool:
    """True in a multirun job that runs in another process than the multirun's own (joblib's, Ray's workers)."""
    path = sweep_file()
    if path is None or not path.exists():
        return False
    return json.loads(path.read_text()).get("pid") not in (None, os.getpid())


def end_parent(status: str) -> None:
    """Mark the current multirun's parent run `status` (KILLED after Ctrl-C). No-op outside a sweep."""
    sweep = current()
    if sweep is None:
        return
    from seqlab import tracking

    tracking.end_run_quietly(sweep.uri, sweep.parent_run_id, status)


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
    encoder = cfg.encoder.name if cfg.get("encoder") is not None else "noencoder"
    return f"{encoder}-{cfg.head.name}-{data_name}"


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


def record_failed_job(cfg: DictConfig, line: str, status: int) -> None:
    """A job that failed: its run (if it began) is already FAILED with the `error` tag; a job refused before
    its run began gets a FAILED run under the sweep's parent, so that the job table shows it."""
    from seqlab import tracking

    sweep = current()
    if sweep is None:
        return
    tags = {JOB_STATUS_TAG: str(status), **job_details()}
    run_id = tracking.last_started_run()
    try:
        if run_id is not None:
            tracking.set_run_tags(sweep.uri, run_id, tags)
            return
        name = run_name(cfg, str(cfg.data.get("name", "?")), sweep)
        tracking.record_failed_run(sweep.uri, cfg.tracking.experiment, sweep.parent_run_id, name, line,
                                   {**tags, "sweep": sweep.name})
    except Exception as e:  # noqa: BLE001 - the store itself may be what failed: the line was printed
        log.warning("could not record the failed job in %s: %s", sweep.uri, e)


def exit_status() -> int:
    """The status the command exits with after this process's multirun: 0, or 1 / 2 when jobs failed."""
    return int(_outcome.get("status", 0))


class SweepCallback(Callback):
    """Opens the sweep's parent MLflow run; closes it with a summary (and a leaderboard) at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from seqlab.errors import SeqlabError
        from seqlab.runtime import interrupts
        from seqlab.tracking import store

        try:
            store.check_store(config.tracking.uri, config.tracking.artifact_location, config.tracking.experiment)
        except SeqlabError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        from seqlab import tracking

        interrupts.install(forward_to_children=True)  # jobs in worker processes (joblib) hear Ctrl-C / SIGTERM too
        overrides = list(config.hydra.overrides.task)
        sweep_dir = Path(config.hydra.sweep.dir)
        swept = swept_keys(overrides)
        name = "sweep " + " ".join(o for o in overrides if override_key(o) in swept)
        tags = {"sweep": str(sweep_dir), "seqlab.sweep": "parent", "hydra.overrides": " ".join(overrides)[:5000],
                "hydra.sweep_dir": str(sweep_dir), "seqlab.swept": ",".join(swept)[:5000],
                **dict(config.tracking.get("tags") or {}), **tracking.process_tags()}
        run_id = tracking.create_run(config.tracking, name[:250], tags)
        global _last_sweep_file
        _last_sweep_file = sweep_dir / SWEEP_FILE
        _write_sweep_file(_last_sweep_file, run_id, list(swept), config.tracking.uri)
        log.info("sweep parent MLflow run %s (%s)", run_id, name)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        path = Path(config.hydra.sweep.dir) / SWEEP_FILE
        if not path.exists():
            return
        finish(config, json.loads(path.read_text())["run_id"])


def interrupted(status_line: str) -> None:
    """After Ctrl-C / SIGTERM reached the multirun's own process: wait for the job processes (they got
    SIGTERM and end their runs KILLED), kill what is left, end every unfinished job run and the parent
    KILLED, print `status_line`."""
    from seqlab import tracking
    from seqlab.runtime import interrupts

    interrupts.end_children()
    sweep = current_from_any()
    if sweep is not None:
        tracking.end_unfinished_children(sweep.uri, sweep.parent_run_id, "KILLED", "the multirun was interrupted")
        tracking.end_run_quietly(sweep.uri, sweep.parent_run_id, "KILLED")
    print(status_line, file=sys.stderr, flush=True)


def current_from_any() -> Sweep | None:
    """The multirun this process opened (SweepCallback), or the one its job belongs to."""
    path = _last_sweep_file
    if path is None or not path.exists():
        return current()
    info = json.loads(path.read_text())
    return Sweep(info["run_id"], info["name"], tuple(info["swept"]), info.get("uri", ""))


def finish(config: DictConfig, parent_id: str) -> None:
    """Close a multirun's parent run: the job table printed and logged, the leaderboard with compare.by,
    the best job's model registered with tracking.register_as, and the parent FINISHED or FAILED."""
    from seqlab import tracking
    from seqlab.compare import leaderboard

    uri = config.tracking.uri
    runs = tracking.child_runs(uri, parent_id)
    try:
        dev_metric, test_metric = leaderboard.task_metrics(runs)
    except leaderboard.ComparisonError:
        dev_metric, test_metric = "best_val_entity_f1", leaderboard.DEFAULT_METRIC
    table = job_table(runs, swept_keys(list(config.hydra.overrides.task)), dev_metric, test_metric)
    name = tracking.run_name_of(uri, parent_id)
    print(f"\n{name}: {len(runs)} job(s)\n{table}", flush=True)
    statuses = [r.info.status for r in runs]
    failed = len(statuses) - statuses.count("FINISHED")
    tracking.log_to(uri, parent_id, text={"sweep_summary.md": table},
                    metrics={"jobs_finished": statuses.count("FINISHED"), "jobs_failed": failed})
    by = list(config.get("compare", {}).get("by") or [])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    summarise_protocols(uri, parent_id, finished, by or protocol_groups(config), dev_metric,
                        config.get("compare", {}).get("metric") or test_metric)
    if by:
        try:
            board = leaderboard.build(tracking.client(uri), finished, by,
                                      config.compare.get("metric") or test_metric,
                                      resamples=config.compare.get("resamples", 10000))
            leaderboard.write_and_log(tracking.client(uri), board, parent_id)
            print(board.markdown(), flush=True)
        except leaderboard.ComparisonError as e:
            print(f"compare: {e}", flush=True)
            tracking.set_run_tags(uri, parent_id, {"compare_error": str(e)[:500]})
    register_as = config.tracking.get("register_as")
    if register_as:
        register_best(uri, runs, register_as, parent_id, dev_metric)
    if failed:
        codes = {r.data.tags.get(JOB_STATUS_TAG, "1") for r in runs if r.info.status != "FINISHED"}
        _outcome.update(failed=failed, status=2 if codes == {"2"} else 1)
        tracking.set_run_tags(uri, parent_id, {"jobs_failed": str(failed)})
        print(f"error: {failed} of {len(runs)} job(s) failed (their runs are FAILED, with the reason in the "
              f"`error` tag)", file=sys.stderr, flush=True)
    tracking.end_run_quietly(uri, parent_id, "FAILED" if failed or not runs else "FINISHED")


PROTOCOL_KEYS = ("data.fold", "data.train_fraction", "seed", "data.split_seed")  # what a summary averages over


def protocol_groups(config: DictConfig) -> list[str]:
    """The keys a sweep's fold and learning-curve summaries group by without compare.by: what it varies besides
    folds, fractions and seeds."""
    swept = swept_keys(list(config.hydra.overrides.task))
    return [k.lstrip("+~") for k in swept if k.lstrip("+~") not in PROTOCOL_KEYS]


def summarise_protocols(uri: str, parent_id: str, runs: list, by: list[str], dev_metric: str, metric: str) -> None:
    """On the parent: cross_validation.md (and cv_* metrics) when the jobs ran on folds; learning_curve.png and
    .csv when they ran on several data.train_fraction values. Each is printed too."""
    from seqlab import tracking
    from seqlab.compare import summaries

    table, metrics = summaries.cross_validation(runs, by, dev_metric, metric)
    if table:
        print(f"\ncross-validation:\n{table}", flush=True)
        tracking.log_to(uri, parent_id, text={"cross_validation.md": table}, metrics=metrics)
    points = summaries.learning_curve(runs, by, metric)
    if points:
        csv_text = summaries.curve_csv(points)
        print(f"\nlearning curve ({metric}):\n{csv_text}", flush=True)
        tracking.log_to(uri, parent_id, text={"learning_curve.csv": csv_text},
                        figures={"learning_curve.png": summaries.plot_curve(points, metric)})


def job_table(runs: list, swept: tuple[str, ...] = (), metric_dev: str = "best_val_entity_f1",
              metric_test: str = "test_entity_f1") -> str:
    """Markdown table of a sweep's jobs: the overrides that vary, dev and test metric, status, seconds."""
    lines = [f"| # | run | overrides | {metric_dev} | {metric_test} | status | seconds |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(sorted(runs, key=lambda r: r.info.start_time)):
        overrides = r.data.tags.get("hydra.overrides", "").split()
        if swept:
            overrides = [o for o in overrides if override_key(o) in swept]
        m = r.data.metrics
        seconds = ((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000
        fmt = lambda k: f"{m[k]:.4f}" if k in m else "-"  # noqa: E731
        lines.append(f"| {i} | {r.info.run_name} | {' '.join(overrides)} | {fmt(metric_dev)} | "
                     f"{fmt(metric_test)} | {r.info.status} | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def register_best(uri: str, runs: list, name: str, parent_id: str, metric: str = "best_val_entity_f1") -> None:
    """Register the model of the job with the best dev score under `name`, alias champion (never chosen on test)."""
    from seqlab import tracking

    candidates = [r for r in runs if r.info.status == "FINISHED" and "model_uri" in r.data.tags and metric in r.data.metrics]
    if not candidates:
        print(f"register: no finished job logged a model, nothing registered as {name}", flush=True)
        return
    best = max(candidates, key=lambda r: r.data.metrics[metric])
    version = tracking.register_champion(uri, best.data.tags["model_uri"], name)
    tracking.set_run_tags(uri, parent_id, {"champion": f"models:/{name}/{version} ({best.info.run_name})"})
    print(f"registered {best.info.run_name} ({metric} {best.data.metrics[metric]:.4f}) as models:/{name}@champion", flush=True)
