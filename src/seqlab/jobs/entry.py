"""What an entry point does with one composed config: check, run, report errors in one line.

The order is the data flow's: the config is checked, then the tracking store (seconds, before
TensorFlow is imported), and only then is anything heavy run.

Exit statuses (`python -m experiments.run`): 0 done; 1 an unexpected failure (a bug: its traceback is
shown); 2 a user error (a bad config value, unreadable data, a tracking store that cannot be used, a
full disk), one line and no traceback; 130 and 143 after Ctrl-C and SIGTERM. In a multirun a job that
fails ends its run FAILED with its one line as the `error` tag and the next jobs run; the command
then exits 1 (seqlab.jobs.sweep).
"""

from __future__ import annotations

import logging
import os
import sys

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from seqlab.config import check_config
from seqlab.config.search_space import parse_space
from seqlab.config.trials import check_trials
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")
started = False  # set once Hydra has composed a job's config and handed it over (experiments/run.py reads it)


def tuner_directory(cfg: DictConfig) -> str:
    """tuner.directory, or `tuner/` inside this job's Hydra output directory."""
    if cfg.tuner.directory:
        return str(cfg.tuner.directory)
    try:
        from hydra.core.hydra_config import HydraConfig

        return os.path.join(HydraConfig.get().runtime.output_dir, "tuner")
    except ValueError:  # composed without @hydra.main (tests, notebooks)
        return os.path.abspath("tuner")


def hydra_overrides() -> list[str]:
    """The command-line overrides of this Hydra job (a search composes each trial on top of them),
    with `hydra.searchpath`, which finds the user's own config files (e.g. a search space)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides
        return [o for o in overrides.hydra if o.startswith("hydra.searchpath")] + list(overrides.task)
    except ValueError:  # composed without @hydra.main
        raise SeqlabError("a search needs the overrides its config came from: run it with python -m experiments.run, "
                          "or call seqlab.jobs.search.search(cfg, directory, overrides)") from None


def start_backend(trainer: DictConfig) -> None:
    """Import the Keras backend quietly, with trainer.lean_memory's cuts and trainer.threads applied."""
    from seqlab.runtime import memory, threads
    from seqlab.runtime.quiet import import_backend

    lean = trainer.get("lean_memory", True)
    if lean:
        memory.limit_malloc_arenas()  # before the backend starts its threads
    import_backend()  # TensorFlow without its C++ start-up lines, or JAX / PyTorch
    if lean:
        log.debug("gave back %.0f MiB of the backend's library pages", memory.release_library_pages())
    threads.apply(trainer.get("threads"))  # parallel jobs share the cores


def run(cfg: DictConfig) -> float:
    """The job itself: a search (with +tuner=...) or one training run. Returns the best dev score."""
    from seqlab.tracking import store
    from seqlab.jobs import sweep

    from seqlab.jobs.reading import prepare_data

    check_config(cfg)
    if cfg.get("tuner") is not None:  # every trial's config at the space's extremes, before the data and the backend
        check_trials(hydra_overrides(), parse_space(cfg, grid=cfg.tuner.name == "grid"))
    store.check_store(cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment)
    data = prepare_data(cfg.data, cfg.task.name)  # before TensorFlow: a bad file is one line within seconds
    sweep.join(cfg.tracking.uri)  # a multirun job on a machine without the sweep folder finds its parent
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    start_backend(cfg.trainer)
    with store.reserve(cfg.tracking.uri, cfg.tracking.artifact_location):  # room to end the run on a full disk
        if cfg.get("tuner") is not None:
            from seqlab.jobs.search import search

            result = search(cfg, tuner_directory(cfg), hydra_overrides(), data)
            return result.get(result.get("monitor", ""), 0.0)
        from seqlab.jobs.pipeline import train

        result = train(cfg, data)
        return result[result["monitor"]]


def run_job(cfg: DictConfig) -> float:
    """Run one job; return its best dev score (the task's metric) for sweepers.

    A user error prints one line `error: ...` on stderr: a single run exits with status 2, a multirun
    job ends FAILED and the multirun goes on. Ctrl-C and SIGTERM end the run KILLED and exit 130 / 143.
    """
    global started
    started = True
    from seqlab.jobs import sweep
    from seqlab.runtime import interrupts
    from seqlab.tracking import runs, store

    interrupts.install()
    runs.forget_started_run()
    try:
        return run(cfg)
    except KeyboardInterrupt:
        if sweep.in_worker_process():  # the multirun's own process stops the sweep and says so; this job is done
            sys.stderr.flush()
            os._exit(interrupts.exit_status())  # a pool's worker may catch SystemExit and linger
        sweep.end_parent("KILLED")
        print(f"interrupted ({interrupts.signal_name()}): finished runs and trials are kept in MLflow; "
              "a search continues with tuner.resume=true", file=sys.stderr)
        sys.exit(interrupts.exit_status())
    except MissingMandatoryValue as e:
        return failed(cfg, f"config key {e.full_key} must be set (it is ??? in conf/)", 2)
    except SeqlabError as e:
        return failed(cfg, str(e), 2)
    except Exception as e:
        line = store.describe_failure(e, cfg.tracking.uri, cfg.tracking.artifact_location)
        if line is not None:
            return failed(cfg, line, 2)
        if sweep.current() is None:
            raise
        log.exception("job failed")
        return failed(cfg, f"{type(e).__name__}: {e}", 1)


def failed(cfg: DictConfig, line: str, status: int) -> float:
    """Report a failed job in one line: exit with `status` (a single run), or record the job FAILED and
    let the multirun go on (its parent then ends FAILED and the command exits 1)."""
    from seqlab.jobs import sweep

    print(f"error: {line}", file=sys.stderr, flush=True)
    if sweep.current() is None:
        sys.exit(status)
    sweep.record_failed_job(cfg, line, status)
    return float("nan")


def finish_command(main) -> int:
    """Run the Hydra entry point `main` (experiments/run.py) and return the command's exit status.

    Hydra's own refusals (a missing config group option, a malformed override) exit 1 inside Hydra; they
    come before any job starts, so they are user errors: 2. After a multirun: 0, or the status of its failed
    jobs (seqlab.jobs.sweep.exit_status). Ctrl-C or SIGTERM reaching a multirun whose jobs run in other
    processes ends them and the sweep KILLED (seqlab.jobs.sweep.interrupted): 130 or 143.
    """
    from seqlab.jobs import sweep
    from seqlab.runtime import interrupts

    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return 2 if code == 1 and not started else code
    except KeyboardInterrupt:
        sweep.interrupted(f"interrupted ({interrupts.signal_name()}): every job was stopped and ended KILLED; "
                          "finished runs are kept in MLflow")
        return interrupts.exit_status()
    return sweep.exit_status()
