"""Hydra's override grammar: the keys of overrides, the ones a multirun sweeps, values written as Hydra
reads them, and each search trial's overrides (the search's own with the trial's values on top).
No TensorFlow here.
"""

from __future__ import annotations

import re
from typing import Any

from seqlab.config import choices


def override_key(override: str) -> str:
    """`+encoder=cnn` -> encoder, `head=crf` -> head: the key as Hydra's parser names it."""
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(task_overrides: list[str]) -> tuple[str, ...]:
    """The keys of the overrides that sweep over several values (`head=softmax,crf` -> head)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    return tuple(o.key_or_group for o in parsed if o.is_sweep_override())


_PLAIN = re.compile(r"^[A-Za-z0-9_./:-]+$")


def format_value(value: Any) -> str:
    """A Python value as Hydra's override grammar writes it: true, null, 0.001, [1,2], 'a b'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def trial_overrides(base: list[str], values: dict[str, Any]) -> list[str]:
    """The search's own overrides with the trial's values applied on top, as Hydra overrides.

    A base override of a key the trial sets is replaced. A group choice (`encoder=cnn`) keeps the
    base's form (`+encoder=cnn` when the base appended the group) and drops the base's overrides of
    keys the new option does not have (bilstm's `encoder.units` for a cnn trial).
    """
    values = {k: v for k, v in values.items() if not k.startswith("tuner/")}  # keras-tuner's bookkeeping
    groups = {k: v for k, v in values.items() if k in choices.GROUPS}
    out, plus = [], set()
    for override in base:
        key = override_key(override)
        if key in values:
            if override.startswith("+") and key in groups:
                plus.add(key)
            continue
        group, _, sub = key.partition(".")
        if group in groups and sub and sub.split(".")[0] not in choices.option_keys(group, groups[group]):
            continue
        out.append(override)
    for key, value in values.items():
        prefix = ("+" if key in plus else "") if key in groups else "++"  # ++: set the key whether or not it is there
        out.append(f"{prefix}{key}={format_value(value)}")
    return out
