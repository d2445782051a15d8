"""A search's trials as configs: the search's own overrides plus a trial's values, composed and checked.

`check_trials` probes a space before anything heavy starts (the entry point calls it before the data is read
and before the backend is imported), so a value no config accepts is one line within seconds.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from seqlab.config.checks import check_config
from seqlab.config.compose import compose
from seqlab.config.overrides import trial_overrides
from seqlab.config.search_space import Dimension, probes
from seqlab.errors import ConfigError

_composed: dict[tuple, DictConfig] = {}  # (search overrides, trial values) -> the trial's checked config


def trial_config(base: list[str], values: dict[str, Any]) -> DictConfig:
    """The composed and checked config of a trial with these values, on top of the search's overrides `base`
    (e.g. ["+encoder=bilstm", "+tuner=random", "trainer.epochs=3"]). Composed once per process."""
    key = (tuple(base), tuple(sorted((k, repr(v)) for k, v in values.items())))
    if key not in _composed:
        cfg = compose(trial_overrides(base, values))
        check_config(cfg, search=False)
        _composed[key] = cfg
    return _composed[key]


def check_trials(base: list[str], space: list[Dimension]) -> None:
    """Compose and check every dimension at its extremes (seqlab.config.search_space.probes): raises one
    ConfigError naming the first trial values no config accepts."""
    for values in probes(space):
        try:
            trial_config(base, values)
        except ConfigError as e:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise ConfigError(f"tuner.space gives a trial with {shown}, which is refused: {e}") from None
