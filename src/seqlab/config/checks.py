"""`check_config`: the range and choice checks that the schema's types cannot express, and the keys
it does not define (a `+key=value` typo gets the closest real key). Each refusal is one ConfigError
line naming the key. No TensorFlow here.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqlab.config import choices
from seqlab.config.class_weights import check_spec as check_class_weights
from seqlab.config.schema import Config, TunerConfig
from seqlab.errors import ConfigError


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config key {key}={value!r} is invalid: expected {expected}")


# Keys that count or size something: each must be an integer >= 1 where it is present.
AT_LEAST_ONE = (
    "encoder.layers", "encoder.units", "encoder.filters", "encoder.kernel_size", "encoder.blocks",
    "words.min_freq", "words.char_dim", "words.char_filters", "words.char_kernel", "words.char_units",
    "words.max_word_len", "words.casing_dim",
    "trainer.epochs", "trainer.batch_size", "trainer.patience", "trainer.eval_batch_size",
    "tuner.max_trials", "tuner.executions_per_trial", "tuner.epochs", "tuner.patience", "compare.resamples",
)
# Probabilities of dropping something: each must lie in [0, 1).
DROPOUTS = ("encoder.dropout", "encoder.recurrent_dropout", "words.dropout", "words.word_dropout", "words.singleton_unk",
            "words.char_dropout")
SEED_LIMIT = 2**32  # NumPy and TensorFlow seeds are unsigned 32-bit


def jit_setting(value: Any) -> str | bool:
    """trainer.jit_compile (auto, true, false, or their strings) -> "auto", True or False; ValueError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("auto", "true", "false"):
        raise ValueError(f"expected auto, true or false, got {value!r}")
    return {"true": True, "false": False}.get(text, "auto")


def _jit_setting_ok(value: Any) -> bool:
    try:
        jit_setting(value)
    except ValueError:
        return False
    return True


def _present(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)


def check_config(cfg: DictConfig, search: bool = True) -> None:
    """Raise ConfigError naming the first bad key. Types are already checked by the schema.

    `search=False` leaves the `tuner` block alone: a search checks its space once, then each trial's config.
    """
    enc = cfg.get("encoder")
    if enc is not None:  # before the key check: an unknown encoder has no keys to check against
        _check(enc.get("name") in choices.ENCODERS, "encoder.name", enc.get("name"), f"one of {', '.join(choices.ENCODERS)}")
    known = check_known_keys(cfg)
    check_finite(cfg)
    if enc is None:
        raise ConfigError(f"no encoder chosen: add +encoder=<{'|'.join(choices.ENCODERS)}>, e.g. +encoder=bilstm")
    for key in AT_LEAST_ONE:
        value = _present(cfg, key)
        if value is not None:
            _check(isinstance(value, int) and value >= 1, key, value, "an integer >= 1")
    for key in DROPOUTS:
        value = _present(cfg, key)
        if value is not None:
            _check(0 <= value < 1, key, value, "a float in [0, 1)")
    if "dilations" in enc:
        _check(len(enc.dilations) >= 1 and min(enc.dilations) >= 1, "encoder.dilations", list(enc.dilations), "a non-empty list of integers >= 1")
    _check(0 <= cfg.seed < SEED_LIMIT, "seed", cfg.seed, "an integer in [0, 2**32)")
    _check(0 <= cfg.data.split_seed < SEED_LIMIT, "data.split_seed", cfg.data.split_seed, "an integer in [0, 2**32)")
    for key in cfg.compare.by:
        _check(key in COMPARE_TAGS or key in known or key.startswith(("tags.", "params.")), "compare.by", list(cfg.compare.by),
               f"tags ({', '.join(COMPARE_TAGS)}) or config keys such as words.chars")
    _check(cfg.head.get("reduction", "mean") in ("mean", "sum"), "head.reduction", cfg.head.get("reduction"), "mean or sum")
    _check(cfg.head.name in choices.HEADS, "head.name", cfg.head.name, f"one of {', '.join(choices.HEADS)}")
    check_class_weights(OmegaConf.to_container(cfg.head, resolve=True).get("class_weights"))
    _check(cfg.task.name in choices.TASKS, "task.name", cfg.task.name, f"one of {', '.join(choices.TASKS)} (task=pos)")
    _check(cfg.data.source in choices.DATA_SOURCES, "data.source", cfg.data.source, f"one of {', '.join(choices.DATA_SOURCES)}")
    _check(cfg.data.scheme in ("iob1", "iob2", "bioes", "auto"), "data.scheme", cfg.data.scheme, "iob1, iob2, bioes or auto")
    _check(cfg.data.train_scheme in ("iob2", "bioes"), "data.train_scheme", cfg.data.train_scheme, "iob2 or bioes")
    _check(cfg.trainer.get("threads") is None or cfg.trainer.threads >= 1, "trainer.threads", cfg.trainer.get("threads"),
           "null or an integer >= 1")
    _check(_jit_setting_ok(cfg.trainer.get("jit_compile", "auto")), "trainer.jit_compile", cfg.trainer.get("jit_compile"),
           "auto, true or false")
    _check(not cfg.trainer.get("resume") or bool(cfg.trainer.get("checkpoint")), "trainer.resume", True,
           "trainer.checkpoint=DIR beside it (the folder the run saves its epochs in)")
    _check(cfg.trainer.get("max_minutes") is None or cfg.trainer.max_minutes > 0, "trainer.max_minutes",
           cfg.trainer.get("max_minutes"), "null or a number of minutes > 0")
    _check(cfg.trainer.min_delta >= 0, "trainer.min_delta", cfg.trainer.min_delta, "a float >= 0")
    _check(cfg.data.max_len is None or cfg.data.max_len >= 1, "data.max_len", cfg.data.max_len, "null or >= 1")
    _check(cfg.data.limit is None or cfg.data.limit >= 1, "data.limit", cfg.data.limit, "null or >= 1")
    _check(cfg.data.folds == 0 or cfg.data.folds >= 2, "data.folds", cfg.data.folds, "0 (no cross-validation) or an integer >= 2")
    _check(cfg.data.folds >= 2 or cfg.data.fold == 0, "data.fold", cfg.data.fold, "0 unless data.folds >= 2 is set beside it")
    _check(cfg.data.folds < 2 or 0 <= cfg.data.fold < cfg.data.folds, "data.fold", cfg.data.fold,
           f"a fold in 0 .. data.folds-1 = {cfg.data.folds - 1}")
    _check(0 < cfg.data.train_fraction <= 1, "data.train_fraction", cfg.data.train_fraction, "a float in (0, 1]")
    _check(0 <= cfg.data.dev_fraction < 1, "data.dev_fraction", cfg.data.dev_fraction, "a float in [0, 1)")
    _check(0 <= cfg.data.test_fraction < 1, "data.test_fraction", cfg.data.test_fraction, "a float in [0, 1)")
    _check(cfg.data.dev_fraction + cfg.data.test_fraction < 1, "data.dev_fraction + data.test_fraction",
           cfg.data.dev_fraction + cfg.data.test_fraction, "a sum below 1, so that train keeps sentences")
    _check(cfg.words.chars in ("none", "cnn", "lstm"), "words.chars", cfg.words.chars, "none, cnn or lstm")
    _check(cfg.words.get("char_activation", "tanh") in ("tanh", "linear"), "words.char_activation",
           cfg.words.get("char_activation"), "tanh or linear")
    _check(cfg.words.pretrained_format in ("auto", "glove", "word2vec"), "words.pretrained_format",
           cfg.words.pretrained_format, "auto, glove or word2vec")
    check_representations(cfg)
    _check(cfg.optimizer.name in choices.OPTIMIZERS, "optimizer.name", cfg.optimizer.name, f"one of {', '.join(choices.OPTIMIZERS)}")
    _check(cfg.optimizer.lr > 0, "optimizer.lr", cfg.optimizer.lr, "a float > 0")
    _check(cfg.optimizer.clipnorm is None or cfg.optimizer.clipnorm > 0, "optimizer.clipnorm", cfg.optimizer.clipnorm, "null or a float > 0")
    _check(cfg.get("init", "keras") in ("keras", "pytorch"), "init", cfg.get("init"), "keras or pytorch")
    _check(cfg.optimizer.get("lr_decay", 0.0) >= 0, "optimizer.lr_decay", cfg.optimizer.get("lr_decay"), "a float >= 0")
    wd = cfg.optimizer.get("weight_decay")
    _check(wd is None or wd >= 0, "optimizer.weight_decay", wd, "null or a float >= 0")
    ema = cfg.optimizer.get("ema")
    _check(ema is None or 0 < ema < 1, "optimizer.ema", ema, "null or a float in (0, 1), e.g. 0.999")
    _check(0 <= cfg.optimizer.momentum < 1, "optimizer.momentum", cfg.optimizer.momentum, "a float in [0, 1)")
    check_schedule(cfg.optimizer)
    if cfg.get("tuner") is not None and search:
        t = cfg.tuner
        _check(t.name in choices.TUNERS, "tuner.name", t.name, f"one of {', '.join(choices.TUNERS)}")
        _check(t.factor >= 2, "tuner.factor", t.factor, "an integer >= 2 (Hyperband's reduction factor)")
        from seqlab.config.search_space import parse_space

        parse_space(cfg, grid=t.name == "grid")
    if cfg.data.source == "conll":
        for split in ("train", "test"):
            _check(bool(cfg.data[split]), f"data.{split}", cfg.data[split], "a path to a column file (data=conll needs data.train and data.test)")
    if cfg.data.source == "hf" and not cfg.data.from_disk and cfg.data.name == "hf":
        raise ConfigError("data=hf needs data.name=<hub dataset id> or data.from_disk=PATH")


def check_representations(cfg: DictConfig) -> None:
    """words.dim, words.pretrained and a transformer's preset: a named resource must be installed, a path must
    exist (one line naming what to install or fix; nothing is read yet)."""
    from seqlab.config.pretrained import VECTORS, backbone_folder, vectors_source

    words, enc = cfg.words, cfg.encoder
    transformer = enc.get("name") == "transformer"
    _check(isinstance(words.dim, int) and words.dim >= 0, "words.dim", words.dim, "an integer >= 0 (0: no word embedding)")
    if words.dim == 0 and not transformer:
        _check(words.chars != "none" or words.casing, "words.dim", 0,
               "an integer >= 1 here: with words.chars=none and words.casing=false nothing would represent a word")
    if words.get("pretrained"):
        _check(words.dim > 0, "words.dim", words.dim, "the vectors' size with words.pretrained (e.g. 50 for glove6b50)")
        named = VECTORS.get(words.pretrained)
        if named is not None and named.dim:  # a file's size is only known once read (seqlab.data.vectors)
            _check(words.dim == named.dim, "words.dim", words.dim,
                   f"{named.dim}, the size of {words.pretrained}'s vectors (words=glove sets both)")
        vectors_source(words.pretrained)
        most = words.get("pretrained_max_words")
        _check(most is None or most >= 0, "words.pretrained_max_words", most, "null or an integer >= 0")
    if transformer:
        _check(enc.pooling in ("first", "mean", "last"), "encoder.pooling", enc.pooling, "first, mean or last")
        backbone_folder(enc.preset)


def check_schedule(optimizer: DictConfig) -> None:
    """The learning-rate schedule and the encoder's own learning rate."""
    schedule = optimizer.get("schedule", "constant")
    _check(schedule in ("constant", "linear"), "optimizer.schedule", schedule, "constant or linear")
    warmup = optimizer.get("warmup", 0.1)
    _check(0 <= warmup < 1, "optimizer.warmup", warmup, "a float in [0, 1): the share of the steps spent warming up")
    _check(schedule == "constant" or not optimizer.get("lr_decay"), "optimizer.lr_decay", optimizer.get("lr_decay"),
           "0 with optimizer.schedule=linear (one schedule at a time)")
    encoder_lr = optimizer.get("encoder_lr")
    _check(encoder_lr is None or encoder_lr > 0, "optimizer.encoder_lr", encoder_lr, "null or a float > 0")


def check_finite(cfg: DictConfig) -> None:
    """Refuse infinite and NaN numbers anywhere in the config (`optimizer.lr=inf` would train nothing)."""
    for key, value in flatten(cfg).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {key}={value!r} is invalid: expected a finite number")


FREE_FORM = ("tuner.space", "tracking.tags", "head.class_weights")  # mappings whose keys are the user's
COMPARE_TAGS = ("task", "encoder", "head", "data", "tuner")  # run tags a leaderboard can group by


def schema_keys(cfg: DictConfig) -> set[str]:
    """Every dotted key the schema defines for this config (the chosen encoder's and tuner's included)."""
    tree = OmegaConf.to_container(OmegaConf.structured(Config), resolve=False)
    encoder = cfg.get("encoder")
    name = encoder.get("name") if isinstance(encoder, DictConfig) else None
    if name in choices.ENCODERS:
        tree["encoder"] = OmegaConf.to_container(OmegaConf.structured(choices.ENCODERS[name].schema))
    if cfg.get("tuner") is not None:
        tree["tuner"] = OmegaConf.to_container(OmegaConf.structured(TunerConfig))
    return set(flatten(tree)) | set(_mapping_keys(tree))


def _mapping_keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out.append(f"{prefix}{key}")
            out += _mapping_keys(value, f"{prefix}{key}.")
    return out


def check_known_keys(cfg: DictConfig) -> set[str]:
    """Refuse keys the schema does not define (a `+key=value` typo), suggesting the closest real key.

    `+group=option` for a documented group (encoder, tuner, experiment) is not a key and stays allowed.
    Returns the schema's keys.
    """
    known = schema_keys(cfg)
    for key in _leaf_keys(OmegaConf.to_container(cfg, resolve=False)):
        if key in known or any(key == f or key.startswith(f + ".") for f in FREE_FORM):
            continue
        if cfg.get("encoder") is None and key.startswith("encoder."):
            continue  # reported as "no encoder chosen"
        close = closest_key(key, known)
        hint = f"; did you mean {close}?" if close else "; see the keys with --cfg job"
        raise ConfigError(f"config key {key} does not exist (a '+' override cannot add new keys){hint}")
    return known


SYNONYMS = {"learning_rate": "lr", "epoch": "epochs", "batch": "batch_size", "hidden": "units", "hidden_size": "units",
            "num_layers": "layers", "n_layers": "layers", "kernel": "kernel_size", "filter": "filters"}


def closest_key(key: str, known: set[str]) -> str | None:
    """The existing key a misspelt `key` most likely means: same group first, then anywhere."""
    import difflib

    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    if SYNONYMS.get(leaf) in siblings:
        return siblings[SYNONYMS[leaf]]
    close = difflib.get_close_matches(leaf, sorted(siblings), n=1, cutoff=0.6)
    if close:
        return siblings[close[0]]
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _leaf_keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix[:-1]]
    if not tree and prefix:
        return [prefix[:-1]]
    out = []
    for key, value in tree.items():
        out += _leaf_keys(value, f"{prefix}{key}.")
    return out


def flatten(cfg: DictConfig | dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, resolving interpolations."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
