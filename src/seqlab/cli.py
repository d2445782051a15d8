"""What an entry point does with one composed config: check, run, report errors in one line."""

from __future__ import annotations

import logging
import os
import sys

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from seqlab.config import check_config
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")


def run_job(cfg: DictConfig) -> float:
    """Run one training job; return the dev entity F1 for sweepers.

    A user error (bad config value, unreadable data) prints one line
    `error: ...` on stderr and exits with status 2, without a traceback.
    """
    try:
        check_config(cfg)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from seqlab.pipeline import train

        return train(cfg)["val_entity_f1"]
    except SeqlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except MissingMandatoryValue as e:
        print(f"error: config key {e.full_key} must be set (it is ??? in conf/)", file=sys.stderr)
        sys.exit(2)
