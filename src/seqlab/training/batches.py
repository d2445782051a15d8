"""Training batches: sentences of similar length, regrouped every epoch, encoded once."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from seqlab.data.corpus import Sentence
from seqlab.data.vocab import UNK_ID, length_batches


class BucketedBatches(keras.utils.PyDataset):
    """(inputs, tags) batches of sentences of similar length, regrouped every epoch.

    inputs: {"words": int32 [B, T], "chars": int32 [B, T, W], "casing": int32 [B, T]}; tags: int32 [B, T]
    in the task's training scheme (the task converts the sentences' IOB2 tags: `task.encode_training`).
    T and W vary from batch to batch. Bucketing pads far less than random batches (padding ratio 1.03
    against 1.69 on WNUT-16).
    `singleton_unk`: each epoch, every occurrence of a word seen once in `sentences` is replaced by
    UNK with this probability (Lample et al. 2016: 0.5), so that the UNK embedding learns from the
    rare words that look most like the unseen words of dev and test.
    Epoch e's grouping and replacements depend on (seed, e) only, so a resumed run sees the batches
    it would have seen. `shuffle=False`: batches by length, the same every epoch (dev, test).
    """

    def __init__(self, sentences: list[Sentence], task, batch_size: int, seed: int = 0, singleton_unk: float = 0.0,
                 shuffle: bool = True):
        super().__init__()
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.lengths = [len(s) for s in sentences]
        self.input_names = task.input_names
        self.encoded = task.encode_training(sentences)  # once
        self.singleton_unk = float(singleton_unk)
        words = self.encoded.words  # int32 [N tokens]
        self.singletons = (np.bincount(words, minlength=UNK_ID + 1)[words] == 1) & (words > UNK_ID)  # bool [N tokens]
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        """Group the sentences for epoch `epoch` (counted from 0), and draw its singleton replacements."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        self.batches = length_batches(self.lengths, self.batch_size, rng)
        self.corpus = self.encoded
        if self.singleton_unk > 0:
            drop = self.singletons & (np.random.default_rng([self.seed, epoch, 1]).random(len(self.singletons))
                                      < self.singleton_unk)
            self.corpus = dataclasses.replace(self.encoded, words=np.where(drop, UNK_ID, self.encoded.words))

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        return self.corpus.batch(self.batches[i])

    def on_epoch_end(self) -> None:
        self.start_epoch(self.epoch + 1)
