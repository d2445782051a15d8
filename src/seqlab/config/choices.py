"""One registry per config group: the options a user can pick, their keys, and what builds them.

    task:      ner | chunk | pos                      (TASKS)
    data:      data.source = embedded | conll | hf    (DATA_SOURCES)
    encoder:   bilstm | bigru | cnn | idcnn | transformer (ENCODERS)
    head:      crf | softmax                          (HEADS)
    optimizer: optimizer.name = adam | adamw | sgd | rmsprop (OPTIMIZERS)
    tuner:     tuner.name = random | bayesian | hyperband | grid (TUNERS)

`seqlab.config.check_config` reads the names and schemas from here; the
builders (`build_encoder`, `build_head`, `make_optimizer`, `load_corpus`,
`make_tuner`) look their option up here, so a new option is one entry here,
its class where it belongs, and its YAML file in conf/. A builder is named by
"module:attribute" and imported only when used: this module stays light
(no TensorFlow), because `--help` and `--cfg job` import it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, List


@dataclass(frozen=True)
class Option:
    """One choice of a config group: its keys (`schema`, a dataclass) and its builder."""

    builder: str  # "module:attribute", imported when the option is built
    schema: type | None = None  # the option's config keys, merged onto its YAML by Hydra
    args: dict = field(default_factory=dict)  # fixed keyword arguments for the builder

    def load(self) -> Any:
        module, _, attribute = self.builder.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def keys(self) -> set[str]:
        """The option's own config keys (empty without a schema)."""
        return set(self.schema.__dataclass_fields__) if self.schema is not None else set()


# ---------------------------------------------------------------- encoders
@dataclass
class RNNEncoderConfig:
    name: str = "bilstm"
    layers: int = 1
    units: int = 100  # per direction (Lample et al. 2016: 100; Ma & Hovy 2016: 200)
    dropout: float = 0.5  # on the encoder output (Ma & Hovy 2016)
    recurrent_dropout: float = 0.0  # > 0 turns off the fused RNN kernel


@dataclass
class CNNEncoderConfig:
    name: str = "cnn"
    layers: int = 2
    filters: int = 200
    kernel_size: int = 3
    dropout: float = 0.5
    residual: bool = True


@dataclass
class IDCNNEncoderConfig:
    name: str = "idcnn"
    filters: int = 300  # Strubell et al. 2017
    kernel_size: int = 3
    dilations: List[int] = field(default_factory=lambda: [1, 2, 4])
    blocks: int = 4  # the dilated block is applied this many times with shared weights
    dropout: float = 0.5


@dataclass
class TransformerEncoderConfig:
    name: str = "transformer"
    preset: str = "minilm_l6"  # a name of seqlab.config.pretrained.BACKBONES or a local BERT-family folder
    pooling: str = "first"  # first | mean | last: which subtokens make a word's vector
    dropout: float = 0.1  # on the pooled word vectors
    trainable: bool = True  # false: the backbone stays frozen (only the features and the head learn)


ENCODERS = {
    "bilstm": Option("seqlab.model.encoders:RNNEncoder", RNNEncoderConfig, {"cell": "lstm"}),
    "bigru": Option("seqlab.model.encoders:RNNEncoder", RNNEncoderConfig, {"cell": "gru"}),
    "cnn": Option("seqlab.model.encoders:CNNEncoder", CNNEncoderConfig),
    "idcnn": Option("seqlab.model.encoders:IDCNNEncoder", IDCNNEncoderConfig),
    "transformer": Option("seqlab.model.transformer:build_transformer_encoder", TransformerEncoderConfig),
}
# The schema files conf/encoder/*.yaml pull (/schema/encoder/<name>), one per distinct schema.
ENCODER_SCHEMAS = {"rnn": RNNEncoderConfig, "cnn": CNNEncoderConfig, "idcnn": IDCNNEncoderConfig,
                   "transformer": TransformerEncoderConfig}


# ---------------------------------------------------------------- heads
@dataclass
class HeadConfig:
    name: str = "crf"
    constrained: bool = True  # CRF on span tasks: never decode a transition the tag scheme forbids
    reduction: str = "mean"  # the loss over a batch: mean (per sentence for crf, per token for softmax) | sum
    class_weights: Any = None  # balanced | {tag or type: weight}, e.g. {O: 0.5}: weighted CE (softmax), softmax-margin (crf)


HEADS = {
    "crf": Option("seqlab.model.heads:CRFHead", HeadConfig),
    "softmax": Option("seqlab.model.heads:SoftmaxHead", HeadConfig),
}


# ---------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TaskKind:
    """What a task's tags are and how a tagger for it is scored.

    spans: tags are B-/I-/E-/S-/O chunk tags (read in a scheme, checked, scored by seqeval);
    otherwise one free-form tag per token (POS), scored by token accuracy.
    metric: the score early stopping, the tuner and leaderboards maximise: `val_<metric>`
    per epoch, `test_<metric>` at the end, `best_val_<metric>` on a run or search.
    """

    spans: bool
    metric: str
    unit: str  # what one scored item is called in reports: entity, chunk, token

    @property
    def monitor(self) -> str:
        return f"val_{self.metric}"


TASKS = {
    "ner": TaskKind(spans=True, metric="entity_f1", unit="entity"),
    "chunk": TaskKind(spans=True, metric="chunk_f1", unit="chunk"),
    "pos": TaskKind(spans=False, metric="accuracy", unit="token"),
}


@dataclass
class TaskConfig:
    name: str = "ner"  # ner | chunk | pos


# ---------------------------------------------------------------- the rest
DATA_SOURCES = {
    "embedded": Option("seqlab.data.sources:embedded_splits"),
    "conll": Option("seqlab.data.sources:conll_splits"),
    "hf": Option("seqlab.data.sources:hf_splits"),
}
OPTIMIZERS = {
    "adam": Option("keras.optimizers:Adam"),
    "adamw": Option("keras.optimizers:AdamW"),
    "sgd": Option("keras.optimizers:SGD"),
    "rmsprop": Option("keras.optimizers:RMSprop"),
}
TUNERS = {
    "random": Option("keras_tuner:RandomSearch"),
    "bayesian": Option("keras_tuner:BayesianOptimization"),
    "hyperband": Option("keras_tuner:Hyperband"),
    "grid": Option("keras_tuner:GridSearch"),
}
# Config groups whose options are whole sub-configs: a search over `encoder` swaps the whole group.
GROUPS = {"encoder": ENCODERS, "head": HEADS, "task": TASKS}


def option_keys(group: str, name: str) -> set[str]:
    """The config keys option `name` of `group` defines, e.g. ("encoder", "cnn") -> {"name", "filters", ...}."""
    option = GROUPS[group].get(name)
    return option.keys() if isinstance(option, Option) else {"name"}


def choose(registry: dict, name: str, key: str):
    """registry[name], or a ValueError naming the config key and the choices."""
    if name not in registry:
        raise ValueError(f"{key}={name!r} is not one of {', '.join(registry)}")
    return registry[name]
