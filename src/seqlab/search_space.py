"""The YAML search space of a keras-tuner search, checked before any training starts.

    tuner:
      space:
        optimizer.lr:   {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log}
        encoder.units:  {type: int, min: 64, max: 256, step: 32}
        encoder.dropout: {type: float, min: 0.1, max: 0.5}
        head:           {type: choice, values: [softmax, crf]}

Keys are config keys. A key naming a config group (`head`) sets that group's
`name`. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqlab.errors import ConfigError

TYPES = ("float", "int", "choice", "bool")


@dataclass(frozen=True)
class Dimension:
    key: str  # the config key it sets
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values: tuple = ()

    def register(self, hp) -> Any:
        """Declare this dimension on a keras-tuner HyperParameters object; returns its value."""
        if self.type == "float":
            return hp.Float(self.key, self.min, self.max, step=self.step, sampling=self.sampling)
        if self.type == "int":
            return hp.Int(self.key, int(self.min), int(self.max), step=int(self.step or 1), sampling=self.sampling)
        if self.type == "choice":
            return hp.Choice(self.key, list(self.values))
        return hp.Boolean(self.key)


def parse_space(cfg: DictConfig, grid: bool = False) -> list[Dimension]:
    """Check `cfg.tuner.space` against the config; raise ConfigError naming the bad entry."""
    space = cfg.tuner.space
    if not space:
        raise ConfigError("tuner.space is empty: list the config keys to search (see conf/tuner/)")
    dims = []
    for key, spec in space.items():
        where = f"tuner.space.{key}"
        _target(cfg, key, where)
        if not isinstance(spec, DictConfig) or "type" not in spec:
            raise ConfigError(f"{where} must be a mapping with a type ({', '.join(TYPES)}), got {spec!r}")
        spec = OmegaConf.to_container(spec, resolve=True)
        kind = spec.pop("type")
        if kind not in TYPES:
            raise ConfigError(f"{where}.type={kind!r} is not one of {', '.join(TYPES)}")
        allowed = {"float": {"min", "max", "step", "sampling"}, "int": {"min", "max", "step", "sampling"},
                   "choice": {"values"}, "bool": set()}[kind]
        unknown = set(spec) - allowed
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)} for type {kind}; allowed: {sorted(allowed)}")
        if kind in ("float", "int"):
            lo, hi, step = spec.get("min"), spec.get("max"), spec.get("step")
            sampling = spec.get("sampling", "linear")
            if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or not lo < hi:
                raise ConfigError(f"{where}: needs numbers min < max, got min={lo!r} max={hi!r}")
            if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
                raise ConfigError(f"{where}: an int range needs whole min and max, got {lo!r}, {hi!r}")
            if sampling not in ("linear", "log", "reverse_log"):
                raise ConfigError(f"{where}.sampling={sampling!r} is not one of linear, log, reverse_log")
            if sampling != "linear" and lo <= 0:
                raise ConfigError(f"{where}: {sampling} sampling needs min > 0, got {lo!r}")
            if step is not None and (not isinstance(step, (int, float)) or step <= 0):
                raise ConfigError(f"{where}.step must be a number > 0, got {step!r}")
            if grid and kind == "float" and step is None:
                raise ConfigError(f"{where}: a grid search needs a step for float ranges")
            dims.append(Dimension(key, kind, float(lo), float(hi), step, sampling))
        elif kind == "choice":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}.values must be a non-empty list")
            dims.append(Dimension(key, kind, values=tuple(values)))
        else:
            dims.append(Dimension(key, kind))
    return dims


def _target(cfg: DictConfig, key: str, where: str) -> None:
    node = OmegaConf.select(cfg, key, default="__missing__", throw_on_missing=False)
    if isinstance(node, str) and node == "__missing__":
        raise ConfigError(f"{where}: unknown config key {key!r}")


def apply_values(cfg: DictConfig, values: dict[str, Any]) -> DictConfig:
    """A copy of `cfg` with the trial's values set (a group key such as `head` sets `head.name`)."""
    trial = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key, value in values.items():
        if key.startswith("tuner/"):
            continue  # keras-tuner's own bookkeeping (Hyperband)
        node = OmegaConf.select(trial, key)
        OmegaConf.update(trial, f"{key}.name" if isinstance(node, DictConfig) else key, value, merge=False)
    return trial
