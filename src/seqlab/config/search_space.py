"""The YAML search space of a keras-tuner search, and each trial's config composed by Hydra.

    tuner:
      space:
        encoder:         {type: choice, values: [bilstm, cnn, idcnn]}   # swaps the whole group
        head:            {type: choice, values: [softmax, crf]}
        optimizer.lr:    {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log}
        encoder.units:   {type: int, min: 64, max: 256, step: 32}       # only for bilstm / bigru
        encoder.dropout: {type: float, min: 0.1, max: 0.5}

Keys are config keys. A key naming a config group (encoder, head) chooses one
of its options, and a trial gets that option's whole config, as if the user
had typed `encoder=cnn`: each trial's values become Hydra overrides on top of
the search's own overrides (`trial_overrides`), composed by Hydra's compose
API. A key that only some options of a searched group have (`encoder.units`)
is searched under keras-tuner's `conditional_scope`, only when the trial's
option has it; when the group is not searched and its option lacks the key,
the key is left out. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqlab.config import choices
from seqlab.errors import ConfigError

TYPES = ("float", "int", "choice", "bool")
UNSEARCHABLE = ("task", "tuner", "tracking", "compare")  # a search compares trials on one metric, in one place


@dataclass(frozen=True)
class Dimension:
    key: str  # the config key it sets
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values: tuple = ()
    when: tuple[str, tuple] | None = None  # (group, options): active only when that group takes one of them

    def register(self, hp) -> Any:
        """Declare this dimension on a keras-tuner HyperParameters object; returns its value (None if inactive)."""
        if self.when is None:
            return self._declare(hp)
        group, options = self.when
        with hp.conditional_scope(group, list(options)):
            return self._declare(hp)

    def _declare(self, hp) -> Any:
        if self.type == "float":
            return hp.Float(self.key, self.min, self.max, step=self.step, sampling=self.sampling)
        if self.type == "int":
            return hp.Int(self.key, int(self.min), int(self.max), step=int(self.step or 1), sampling=self.sampling)
        if self.type == "choice":
            return hp.Choice(self.key, list(self.values))
        return hp.Boolean(self.key)

    def extremes(self) -> list:
        """The values that probe this dimension before a search starts: every choice, or min and max."""
        if self.type == "choice":
            return list(self.values)
        if self.type == "bool":
            return [False, True]
        lo, hi = (int(self.min), int(self.max)) if self.type == "int" else (self.min, self.max)
        return [lo, hi]


def parse_space(cfg: DictConfig, grid: bool = False) -> list[Dimension]:
    """Check `cfg.tuner.space` against the config; raise ConfigError naming the bad entry.

    Group choices come first, so the keys conditional on them can refer to them.
    """
    space = cfg.tuner.space
    if not space:
        raise ConfigError("tuner.space is empty: list the config keys to search (see conf/tuner_space/)")
    searched_groups = {k: spec for k, spec in space.items() if k in choices.GROUPS}
    dims = []
    for key in [*searched_groups, *(k for k in space if k not in searched_groups)]:
        spec, where = space[key], f"tuner.space.{key}"
        if not isinstance(spec, DictConfig) or "type" not in spec:
            raise ConfigError(f"{where} must be a mapping with a type ({', '.join(TYPES)}), got {spec!r}")
        if key.split(".")[0] in UNSEARCHABLE:
            raise ConfigError(f"{where}: {key.split('.')[0]} cannot be searched: every trial of a search must be "
                              "scored the same way and recorded in the same place; run one search per task instead")
        dim = _dimension(key, OmegaConf.to_container(spec, resolve=True), where, grid)
        if key in choices.GROUPS:
            unknown = [v for v in dim.values if v not in choices.GROUPS[key]] if dim.type == "choice" else ["(not a choice)"]
            if unknown:
                raise ConfigError(f"{where}: {key} is a config group; its values must be a choice among "
                                  f"{', '.join(choices.GROUPS[key])}, not {', '.join(map(str, unknown))}")
            dims.append(dim)
            continue
        when = _condition(cfg, key, where, searched_groups)
        if when == "absent":
            continue  # the chosen option lacks the key (see left_out)
        dims.append(Dimension(**{**dim.__dict__, "when": when}))
    return dims


def _dimension(key: str, spec: dict, where: str, grid: bool) -> Dimension:
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
        return Dimension(key, kind, float(lo), float(hi), step, sampling)
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values must be a non-empty list")
        return Dimension(key, kind, values=tuple(values))
    return Dimension(key, kind)


def _condition(cfg: DictConfig, key: str, where: str, searched_groups: dict):
    """None (always active), (group, options) (active for those options), or "absent" (never active)."""
    group, _, sub = key.partition(".")
    if group not in choices.GROUPS or not sub:
        _require(cfg, key, where)
        return None
    leaf = sub.split(".")[0]
    having = tuple(name for name in choices.GROUPS[group] if leaf in choices.option_keys(group, name))
    if group in searched_groups:
        searched = tuple(searched_groups[group]["values"])
        active = tuple(name for name in searched if name in having)
        if not active:
            raise ConfigError(f"{where}: none of the searched {group} options ({', '.join(searched)}) has a key {sub!r}")
        return None if active == searched else (group, active)
    current = cfg.get(group)
    if current is not None and OmegaConf.select(cfg, key, default="__missing__") != "__missing__":
        return None
    if having:
        return "absent"
    raise ConfigError(f"{where}: no {group} option has a key {sub!r}")


def _require(cfg: DictConfig, key: str, where: str) -> None:
    node = OmegaConf.select(cfg, key, default="__missing__", throw_on_missing=False)
    if isinstance(node, str) and node == "__missing__":
        raise ConfigError(f"{where}: unknown config key {key!r}")


def left_out(cfg: DictConfig, dims: list[Dimension]) -> list[str]:
    """Lines naming the space's keys that `parse_space` left out, and why."""
    searched = {d.key for d in dims}
    return [f"tuner.space.{key}: not searched, the {cfg[key.split('.')[0]].name} {key.split('.')[0]} has no such key"
            for key in cfg.tuner.space if key not in searched]


def probes(dims: list[Dimension]) -> list[dict[str, Any]]:
    """Trial values that check a space before any training: each dimension at each extreme,
    with the group option that makes a conditional one active."""
    out = []
    for dim in dims:
        for value in dim.extremes():
            values = {dim.key: value}
            if dim.when is not None:
                values[dim.when[0]] = dim.when[1][0]
            out.append(values)
    return out
