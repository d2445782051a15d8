"""`TaggingTask`: the token and label side of a tagger, saved with its weights.

After keras-hub's preprocessor and flair's saved tag dictionary: the
vocabulary (words, characters, casing), the label set, the training and
output tag schemes with the conversion between them, the CRF constraints the
labels imply, and the metric the task is scored by. `Tagger` keeps one and
saves it in the .keras file, so that file alone turns raw tokens into tags. No Keras here: the Tagger
registers the class with Keras (seqlab.saving, for loading), and an exported tagger (seqlab.export)
encodes with it without TensorFlow.

    task = TaggingTask.build("ner", train_sentences, words_cfg, train_scheme="bioes")
    task.encode_tokens([["EU", "rejects"]])  # {"words": [1, 2], "chars": [1, 2, W], "casing": [1, 2]}
    task.to_output(["S-ORG", "O"])           # ["B-ORG", "O"]  (IOB2, what is scored)
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from seqlab.config import choices
from seqlab.data.corpus import Sentence
from seqlab.data.schemes import entity_spans, iob2_to_bioes, split_tag, to_iob2
from seqlab.data.vocab import CASINGS, UNK_ID, EncodedCorpus, Vocabulary, length_batches
from seqlab.data.wordpiece import WordPiece
from seqlab.task.subwords import CorpusPieces, encode_subwords

WORD_INPUTS = ("words", "chars", "casing")
MAX_BATCH_TOKENS = 16384  # padded tokens per decoding batch: long sentences come in smaller batches (bounded memory)
SUBWORD_INPUTS = ("subwords", "piece_word")


class TaggingTask:
    """A task (ner, chunk, pos), its vocabulary and labels, and its tag schemes.

    Args:
        name: a key of `seqlab.config.choices.TASKS`.
        vocabulary: a `Vocabulary` (or its dict, from a saved config); it holds the labels.
        train_scheme: span tasks: the scheme the model is trained in (iob2 or bioes); ignored for pos.
        subwords: a transformer encoder's WordPiece vocabulary (or its dict): the inputs then also hold each
            word's subtokens (seqlab.task.subwords); None for the other encoders.
    """

    def __init__(self, name: str, vocabulary: Vocabulary | dict, train_scheme: str = "iob2",
                 subwords: WordPiece | dict | None = None):
        self.name = name
        self.kind = choices.choose(choices.TASKS, name, "task.name")
        self.vocabulary = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(**vocabulary)
        self.train_scheme = train_scheme if self.kind.spans else None
        self.subwords = WordPiece(**subwords) if isinstance(subwords, dict) else subwords

    @classmethod
    def build(cls, name: str, train: list[Sentence], words, train_scheme: str = "iob2") -> "TaggingTask":
        """Vocabulary and labels from the training sentences only (`train` is in IOB2, or free tags for pos);
        `words` is the words config (min_freq, lowercase, digits_to_zero, max_word_len)."""
        task = cls(name, Vocabulary([], [], []), train_scheme)
        task.vocabulary = Vocabulary.build(task.training_sentences(train), words.min_freq, words.lowercase,
                                           words.digits_to_zero, words.max_word_len)
        return task

    # ------------------------------------------------------------ what the model reads
    @property
    def labels(self) -> list[str]:
        """The K tag names, in the training scheme; tag id i is labels[i]."""
        return self.vocabulary.labels

    @property
    def input_names(self) -> tuple[str, ...]:
        """The keys of the inputs `encode_tokens` gives: words, chars, casing (and subwords, piece_word)."""
        return WORD_INPUTS + (SUBWORD_INPUTS if self.subwords is not None else ())

    @property
    def num_words(self) -> int:
        """Trained word ids (padding, UNK, the training words); ids from here on are the fixed `extra_words`
        of pretrained vectors (seqlab.data.vectors)."""
        return len(self.vocabulary.words)

    @property
    def num_fixed_words(self) -> int:
        return len(self.vocabulary.extra_words)

    @property
    def num_chars(self) -> int:
        return len(self.vocabulary.chars)

    @property
    def unk_id(self) -> int:
        """The word id of unknown words (what word dropout and singleton replacement use)."""
        return UNK_ID

    @property
    def num_casings(self) -> int:
        return len(CASINGS)

    @property
    def constraint_scheme(self) -> str | None:
        """The scheme whose forbidden transitions a constrained CRF excludes; None for pos (free tags)."""
        return self.train_scheme

    @property
    def metric(self) -> str:
        """The task's score: entity_f1 (ner), chunk_f1 (chunk), accuracy (pos)."""
        return self.kind.metric

    @property
    def monitor(self) -> str:
        """The per-epoch dev metric early stopping and the tuner maximise, e.g. val_entity_f1."""
        return self.kind.monitor

    # ------------------------------------------------------------ conversions
    def to_training(self, tags) -> list[str]:
        """IOB2 (or free) tags -> the training scheme. The one place where sentences change scheme."""
        return iob2_to_bioes(tags) if self.train_scheme == "bioes" else list(tags)

    def training_sentences(self, sentences: list[Sentence]) -> list[Sentence]:
        """Sentences with IOB2 (or free) tags -> the same sentences with tags in the training scheme."""
        return [Sentence(s.tokens, tuple(self.to_training(s.tags))) for s in sentences]

    def names(self, ids) -> list[str]:
        """Decoded tag ids of one sentence -> tag names in the training scheme."""
        labels = self.labels
        return [labels[j] for j in ids]

    def to_output(self, tags) -> list[str]:
        """Decoded tags in the training scheme -> the output scheme (IOB2 for span tasks, unchanged for pos)."""
        return to_iob2(tags, self.train_scheme) if self.kind.spans else list(tags)

    def output_groups(self) -> np.ndarray:
        """int [K]: labels the output scheme writes as one tag share a number (BIOES's B-X and S-X are both
        B-X, I-X and E-X both I-X); every label is its own group for pos. A token's probability of its output
        tag is the sum over its group (seqlab.model.confidence)."""
        if not self.kind.spans:
            return np.arange(len(self.labels))
        keys = []
        for label in self.labels:
            prefix, kind = split_tag(label)
            keys.append("O" if prefix == "O" else f"{'B' if prefix in 'BS' else 'I'}-{kind}")
        first = {key: i for i, key in reversed(list(enumerate(keys)))}
        return np.array([first[key] for key in keys])

    def output_spans(self, tags) -> list[tuple[str, int, int]]:
        """Output-scheme tags of one sentence -> its entities (type, start, end exclusive); [] for pos."""
        return entity_spans(tags) if self.kind.spans else []

    def encode_tokens(self, batch) -> dict[str, np.ndarray]:
        """Token lists -> {"words": [B, T], "chars": [B, T, W], "casing": [B, T]} int32, 0-padded, and with
        subwords {"subwords", "piece_word": [B, NW, W']} (seqlab.task.subwords)."""
        inputs = self.vocabulary.encode_tokens(batch)
        if self.subwords is not None:
            inputs.update(encode_subwords(self.subwords, batch))
        return inputs

    def encode_corpus(self, token_lists, tag_lists=None) -> EncodedCorpus:
        """Sentences (and their tags in the training scheme) encoded once: a seqlab.data.vocab.EncodedCorpus,
        whose `batch(indices)` gives what encode_tokens and encode_tags give."""
        corpus = self.vocabulary.encode_corpus(token_lists, tag_lists)
        if self.subwords is not None:
            corpus.extra = CorpusPieces(self.subwords, token_lists)
        return corpus

    def encode_training(self, sentences: list[Sentence]) -> EncodedCorpus:
        """Sentences with IOB2 (or free) tags encoded once, their tags in the training scheme."""
        return self.encode_corpus([s.tokens for s in sentences], [self.to_training(s.tags) for s in sentences])

    def encode_tags(self, batch, length: int) -> np.ndarray:
        """Tag lists in the training scheme -> int32 [B, length]."""
        return self.vocabulary.encode_tags(batch, length)

    def prediction_batches(self, sentences, batch_size: int, max_tokens: int | None = MAX_BATCH_TOKENS
                           ) -> Iterator[tuple[np.ndarray, dict]]:
        """(sentence indices, inputs) for batches of similar length, at most `batch_size` sentences and (unless
        `max_tokens` is None) at most that many padded tokens each; empty batches are skipped."""
        lengths = [len(s) for s in sentences]
        corpus = self.encode_corpus(sentences)  # every distinct token encoded once, not once per batch
        for idx in length_batches(lengths, batch_size, rng=None, max_tokens=max_tokens):
            if any(lengths[i] for i in idx):
                yield idx, corpus.batch(idx)[0]

    def decode_with(self, run_batch, sentences, batch_size: int = 256) -> list[np.ndarray]:
        """Decoded tag ids per sentence (int32 [len(sentence)] each), in input order; nothing is truncated.
        `run_batch(inputs) -> int ids [B, T]` decodes one of `prediction_batches` (a Tagger's compiled decoder,
        an exported model)."""
        out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(sentences)
        for idx, inputs in self.prediction_batches(sentences, batch_size):
            ids = run_batch(inputs)  # int [B, T]
            for row, i in enumerate(idx):
                out[i] = ids[row, : len(sentences[i])]
        return out

    # ------------------------------------------------------------ saving
    def get_config(self) -> dict:
        config = {"name": self.name, "vocabulary": self.vocabulary.to_dict(), "train_scheme": self.train_scheme}
        if self.subwords is not None:
            config["subwords"] = self.subwords.to_dict()
        return config

    @classmethod
    def from_config(cls, config: dict) -> "TaggingTask":
        return cls(**config)

    def __repr__(self) -> str:
        return (f"TaggingTask({self.name!r}, {self.num_words} words (+{self.num_fixed_words} fixed), {self.num_chars} chars, "
                f"{len(self.labels)} labels, train_scheme={self.train_scheme!r})")
