"""Reading a config's data, before anything heavy: the entry point calls it before TensorFlow is imported,
so a bad file is one line within seconds. No Keras here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig

from seqlab.config import choices
from seqlab.data import Corpus, Sentence, load_corpus
from seqlab.data.corpus import has_entities
from seqlab.data.sources import training_sentences, unseen_tags

log = logging.getLogger("seqlab")


@dataclass
class Data:
    """A corpus and the training sentences the model sees (truncated to data.max_len, still IOB2)."""

    corpus: Corpus
    train: list[Sentence]


def prepare_data(data_cfg: DictConfig, task_name: str) -> Data:
    """The corpus of the `data` config, read for task `task_name`, with its training sentences."""
    kind = choices.TASKS[task_name]
    corpus = load_corpus(data_cfg, scheme=None if kind.spans else "none")
    log.info("data %s (task %s): %d train / %d dev / %d test sentences", corpus.name, task_name,
             len(corpus.train), len(corpus.dev), len(corpus.test))
    if kind.spans:
        plural = "entities" if kind.unit == "entity" else f"{kind.unit}s"
        if not has_entities([s.tags for s in corpus.dev]):
            log.warning("the dev split has no %s: its %s F1 is 0 at every epoch, so early stopping follows the dev "
                        "loss (val_loss)", plural, kind.unit)
        if not has_entities([s.tags for s in corpus.test]):
            log.warning("the test split has no %s: its %s F1 is 0", plural, kind.unit)
    elif looks_like_span_tags(corpus.train):
        log.warning("task=%s reads each tag as a token class, but the training tags look like IOB chunk tags "
                    "(B-/I- prefixes): for entities or chunks use task=ner or task=chunk", task_name)
    missing = unseen_tags(corpus)
    if missing:
        log.warning("tags in dev/test but not in train (they can only be missed): %s", ", ".join(missing))
    return Data(corpus, training_sentences(corpus.train, data_cfg.max_len))


def looks_like_span_tags(sentences: list[Sentence]) -> bool:
    """True when most tags are O or carry a B-/I-/E-/S- prefix, and some carry one."""
    tags = [t for s in sentences for t in s.tags]
    prefixed = sum(t[:2] in ("B-", "I-", "E-", "S-") for t in tags)
    return prefixed > 0 and prefixed + tags.count("O") >= 0.9 * len(tags)
