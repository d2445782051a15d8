"""Compose seqlab's config with Hydra's compose API, outside `python -m experiments.run`.

    from seqlab.config import compose
    cfg = compose(["+encoder=bilstm", "trainer.epochs=1"])

Scripts, tests and notebooks use it; a search composes each trial's config with
it. Inside a running Hydra app (the entry point) it reuses the app's own config
search path; elsewhere it reads conf/ beside src/ (or $SEQLAB_CONFIG_DIR).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from seqlab.errors import ConfigError

CONFIG_NAME = "config"


def config_dir() -> str:
    """$SEQLAB_CONFIG_DIR, or the repository's conf/ (src/seqlab/config/compose.py -> conf/)."""
    return os.environ.get("SEQLAB_CONFIG_DIR") or str(Path(__file__).resolve().parents[3] / "conf")


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The job config for command-line `overrides`. A bad override raises ConfigError (one line)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from seqlab.config.schema import register_configs

    register_configs()
    try:
        if GlobalHydra.instance().is_initialized():
            return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
    except Exception as e:  # Hydra's composition and validation errors
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            reason = " ".join(str(e).split())
            raise ConfigError(f"{reason[:300]} (overrides: {' '.join(overrides)})") from None
        raise
