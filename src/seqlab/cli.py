"""What an entry point does with one composed config: check, run, report errors in one line.

The order is the data flow's: the config is checked, then the tracking store
(seconds, before TensorFlow is imported), and only then is anything heavy run.
"""

from __future__ import annotations

import logging
import os
import sys

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from seqlab.config import check_config
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")


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
                          "or call seqlab.tuning.search(cfg, directory, overrides)") from None


def run_job(cfg: DictConfig) -> float:
    """Run one training job; return its best dev score (the task's metric) for sweepers.

    A user error (bad config value, unreadable data, unusable tracking store)
    prints one line `error: ...` on stderr and exits with status 2, without a
    traceback. Ctrl-C and SIGTERM end the run KILLED and exit 130 and 143.
    """
    from seqlab import interrupts
    from seqlab.store import check_store, describe_failure
    from seqlab.sweep import end_parent as end_sweep_parent
    from seqlab.sweep import join as join_sweep

    interrupts.install()
    try:
        check_config(cfg)
        check_store(cfg.tracking.uri, cfg.tracking.artifact_location)
        join_sweep(cfg.tracking.uri)  # a multirun job on a machine without the sweep folder finds its parent
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from seqlab.quiet import import_backend

        lean = cfg.trainer.get("lean_memory", True)
        if lean:
            from seqlab import memory

            memory.limit_malloc_arenas()  # before the backend starts its threads
        import_backend()  # TensorFlow without its C++ start-up lines, or JAX / PyTorch
        if lean:
            log.debug("gave back %.0f MiB of the backend's library pages", memory.release_library_pages())
        from seqlab import threads

        threads.apply(cfg.trainer.get("threads"))  # parallel jobs share the cores
        if cfg.get("tuner") is not None:
            from seqlab.tuning import search

            result = search(cfg, tuner_directory(cfg), hydra_overrides())
            return result.get(result.get("monitor", ""), 0.0)
        from seqlab.pipeline import train

        result = train(cfg)
        return result[result["monitor"]]
    except SeqlabError as e:
        end_sweep_parent("FAILED")
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        end_sweep_parent("KILLED")
        print(f"interrupted ({interrupts.signal_name()}): finished runs and trials are kept in MLflow; "
              "a search continues with tuner.resume=true", file=sys.stderr)
        sys.exit(interrupts.exit_status())
    except MissingMandatoryValue as e:
        end_sweep_parent("FAILED")
        print(f"error: config key {e.full_key} must be set (it is ??? in conf/)", file=sys.stderr)
        sys.exit(2)
    except Exception as e:
        line = describe_failure(e, cfg.tracking.uri)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)
