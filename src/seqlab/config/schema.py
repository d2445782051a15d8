"""Typed config schemas, registered with Hydra's ConfigStore.

Hydra merges the YAML under conf/ onto these dataclasses, so a misspelt key
(`trainer.epoch=3`) or a wrong type (`trainer.epochs=many`) is refused by
Hydra before anything runs; seqlab.config.checks adds the range and choice
checks that types cannot express. Every default is written once, here (and in
choices.py for the encoders and heads). This module stays light: `--help` and
`--cfg job` import it, and they must not import TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from seqlab.config.choices import ENCODER_SCHEMAS, HeadConfig, TaskConfig

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default: a plain `mlflow ui` in the same folder shows the runs


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, or DEFAULT_TRACKING_URI: what `tracking.uri` and the command-line tools default to."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@dataclass
class DataConfig:
    name: str = "wnut16"  # the corpus' name (the `data` tag); for source=hf, the hub dataset id
    source: str = "embedded"  # embedded | conll | hf
    root: Optional[str] = None  # where the ready-made corpus configs look for their files
    split_seed: int = 42  # fixes the train/dev/test split of data without split files; `seed` never moves it
    dev_fraction: float = 0.1  # used when a source has no dev (or no test) split of its own
    test_fraction: float = 0.1
    limit: Optional[int] = None  # keep only the first N sentences of each split (smoke runs)
    folds: int = 0  # >= 2: k-fold cross-validation over train+dev (documents kept whole); 0: the corpus' own dev
    fold: int = 0  # with folds: which fold is dev (0 .. folds-1); sweep it: 'data.fold=range(5)'
    train_fraction: float = 1.0  # train on a nested subset of train (learning curves): 0.1 lies inside 0.3
    train: Optional[str] = None
    dev: Optional[str] = None
    test: Optional[str] = None
    token_col: int = 0
    tag_col: int = -1
    sep: Optional[str] = None  # None: any whitespace
    encoding: str = "utf-8"
    scheme: str = "auto"  # iob1 | iob2 | bioes | auto: the scheme of the input files (span tasks; pos reads tags as they are)
    train_scheme: str = "iob2"  # iob2 | bioes: the scheme the model is trained in (span tasks)
    max_len: Optional[int] = None  # truncate training sentences (only) to this many tokens
    # source=hf
    config: Optional[str] = None
    revision: Optional[str] = None
    tokens_field: str = "tokens"
    tags_field: str = "ner_tags"
    from_disk: Optional[str] = None
    train_split: str = "train"
    dev_split: Optional[str] = "validation"
    test_split: str = "test"


@dataclass
class WordsConfig:
    """Word representation: word embedding + character CNN (Ma & Hovy 2016), dropout 0.5."""

    dim: int = 100  # word embedding size (Lample et al. 2016 use 100); 0: no word embedding (a transformer's own)
    min_freq: int = 1  # rarer training words map to UNK
    lowercase: bool = False
    digits_to_zero: bool = True  # 1984 and 2001 share one entry (Lample et al. 2016)
    dropout: float = 0.5  # on the concatenated word representation (Ma & Hovy 2016)
    word_dropout: float = 0.0  # probability of replacing a training word by UNK (seeded by `seed`)
    singleton_unk: float = 0.0  # probability of replacing a word seen once in training by UNK, each epoch (Lample: 0.5)
    chars: str = "cnn"  # none | cnn | lstm
    char_dim: int = 30  # Ma & Hovy: 30 (Lample et al.: 25)
    char_filters: int = 30  # cnn: Ma & Hovy 2016, window 3, max-pooling
    char_kernel: int = 3  # cnn
    char_activation: str = "tanh"  # cnn: tanh (Ma & Hovy 2016) | linear (NCRF++)
    char_dropout: float = 0.0  # cnn: dropout on the character embeddings (NCRF++: 0.5)
    char_units: int = 25  # lstm: Lample et al. 2016, per direction
    max_word_len: int = 20  # longer words are cut for the character features only
    casing: bool = False  # casing embedding (Reimers & Gurevych 2017)
    casing_dim: int = 8
    pretrained: Optional[str] = None  # word vectors: glove6b50 (the pretrained extra) or a GloVe / word2vec text file
    pretrained_format: str = "auto"  # auto | glove | word2vec (a file only)
    pretrained_max_words: Optional[int] = 100000  # vector words beyond the training vocabulary kept for dev, test and inference (most frequent first); null: all
    freeze: bool = False  # keep the (pretrained) word embedding fixed


@dataclass
class TrainerConfig:
    epochs: int = 30
    batch_size: int = 32
    patience: int = 5  # epochs without a better dev score (the task's metric) before stopping
    min_delta: float = 0.0  # a dev score must beat the best by more than this to count as better
    eval_batch_size: int = 256
    progress: Optional[bool] = None  # Keras' progress bar inside epochs; null: when an epoch has > 500 batches
    max_minutes: Optional[float] = None  # stop after the epoch that passes this much training time (resumed sessions count)
    test_each_epoch: bool = False  # also score test after every epoch (test_<metric>_by_epoch; never used to choose)
    checkpoint: Optional[str] = None  # a directory: save the model, optimizer and early stopping there after every epoch
    resume: bool = False  # continue from the last epoch saved in trainer.checkpoint (from scratch when it holds none)
    jit_compile: Any = "auto"  # auto | true | false: XLA for the training step and decoder (auto: what measured faster)
    threads: Optional[int] = None  # CPU threads for this job; null: all cores, or cores / n_jobs under hydra/launcher=joblib
    lean_memory: bool = True  # malloc arenas: one per core; the backend's import-time library pages released (seqlab.runtime.memory)


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 0.002
    clipnorm: Optional[float] = 5.0
    momentum: float = 0.0  # sgd only
    lr_decay: float = 0.0  # the lr of epoch e (from 0) is lr / (1 + lr_decay * e), as NCRF++ (Lample et al.) decay it
    weight_decay: Optional[float] = None  # L2 on every weight (NCRF++: 1e-8); null: none
    ema: Optional[float] = None  # average the weights (per-step moving average, this momentum); dev, test and the model use the average
    schedule: str = "constant"  # constant | linear: warm up over `warmup` of the steps, then decay linearly to 0 (fine-tuning)
    warmup: float = 0.1  # linear schedule: the share of all training steps spent warming up
    encoder_lr: Optional[float] = None  # the encoder's own learning rate (null: lr; a transformer's: min(lr, 5e-5)); the head and features keep lr


@dataclass
class TrackingConfig:
    uri: str = f"${{oc.env:MLFLOW_TRACKING_URI,{DEFAULT_TRACKING_URI}}}"  # MLFLOW_TRACKING_URI wins when set
    experiment: str = "seqlab"
    artifact_location: Optional[str] = None  # None: MLflow's default, ./mlruns
    log_model: bool = True
    register_as: Optional[str] = None  # register the model under this name (a sweep or search: its best, alias champion)
    system_metrics: bool = True  # CPU, memory (and GPU) in the run's System metrics tab
    calibration: bool = True  # test_token_ece, test_entity_ece and calibration.png: test tagged once more, with probabilities
    latency_sentences: int = 100  # latency_ms_p50/p95: this many test sentences tagged one at a time (0: not measured)
    tags: Dict[str, str] = field(default_factory=dict)  # extra tags on every run: +tracking.tags.team=nlp


@dataclass
class CompareConfig:
    by: List[str] = field(default_factory=list)  # at the end of a multirun, a leaderboard grouped by these keys
    metric: Optional[str] = None  # None: the task's test metric (test_entity_f1, test_chunk_f1, test_accuracy)
    resamples: int = 10000  # shuffles of the paired approximate-randomisation test


@dataclass
class TunerConfig:
    name: str = "random"  # random | bayesian | hyperband | grid
    max_trials: int = 10
    executions_per_trial: int = 1
    epochs: int = 10  # per trial (Hyperband: the most epochs a model gets)
    patience: int = 3  # early stopping inside each trial, on the task's dev metric
    factor: int = 3  # hyperband only
    resume: bool = False  # continue the search stored in tuner.directory
    directory: Optional[str] = None  # None: <hydra output dir>/tuner
    project: str = "search"
    space: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    words: WordsConfig = field(default_factory=WordsConfig)
    encoder: Any = None  # chosen with +encoder=...
    tuner: Any = None  # +tuner=... turns the run into a keras-tuner search
    head: HeadConfig = field(default_factory=HeadConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    seed: int = 42
    init: str = "keras"  # keras | pytorch: weight initialisation (pytorch: as NCRF++ gets from PyTorch; seqlab.model.init)


def register_configs() -> None:
    """Make the schemas available to conf/*.yaml through their defaults lists."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    # `encoder` is untyped in Config (it is optional), so each encoder file pulls its own schema.
    for name, schema in ENCODER_SCHEMAS.items():
        cs.store(group="schema/encoder", name=name, node=schema)
    cs.store(group="schema", name="tuner", node=TunerConfig)
