"""Tag raw token lists with a trained tagger."""

from __future__ import annotations

import keras
import numpy as np

from seqlab.data.schemes import to_iob2
from seqlab.data.vocab import Vocabulary, length_batches
from seqlab.model import input_signature


class TagPredictor:
    """Wraps a Tagger and its Vocabulary: token lists in, IOB2 tag lists out.

    Sentences are batched by length (little padding) and returned in input
    order. Every token gets a tag: nothing is truncated.
    """

    def __init__(self, model, vocab: Vocabulary, batch_size: int = 256, train_scheme: str = "iob2"):
        self.model, self.vocab, self.batch_size, self.train_scheme = model, vocab, batch_size, train_scheme
        self.decode_batch = compiled_decoder(model)

    def predict_ids(self, sentences: list[list[str]]) -> list[np.ndarray]:
        """Tag ids per sentence (int32 [len(sentence)] each)."""
        out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(sentences)
        for idx in length_batches([len(s) for s in sentences], self.batch_size, rng=None):
            batch = [sentences[i] for i in idx]
            if not any(batch):
                continue
            ids = self.decode_batch(self.vocab.encode_tokens(batch))  # int32 [B, T]
            for row, i in enumerate(idx):
                out[i] = ids[row, : len(sentences[i])]
        return out

    def predict_labels(self, sentences: list[list[str]]) -> list[list[str]]:
        """Tag names per sentence in the training scheme (IOB2 or BIOES), as the model decoded them."""
        labels = self.vocab.labels
        return [[labels[j] for j in ids] for ids in self.predict_ids(sentences)]

    def predict(self, sentences: list[list[str]]) -> list[list[str]]:
        """IOB2 tag lists, one per sentence."""
        return [to_iob2(tags, self.train_scheme) for tags in self.predict_labels(sentences)]


def compiled_decoder(model):
    """inputs dict -> decoded tag ids (numpy int32 [B, T]), traced once for every batch shape.

    Keras' predict_on_batch retraces for each new (T, W) until it relaxes the
    shapes; a fixed signature with unknown dimensions avoids that on TensorFlow.
    """
    if keras.backend.backend() != "tensorflow":
        return lambda x: np.asarray(model.predict_on_batch(x))
    import tensorflow as tf

    decode = tf.function(lambda x: model.predict_step(x), input_signature=[input_signature()])
    return lambda x: decode(x).numpy()
