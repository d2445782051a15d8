"""The sequence tagger: a Keras 3 model whose outputs are emission scores.

    inputs {"words": int [B, T], "chars": int [B, T, W], "casing": int [B, T]}  (0 = padding)
      -> WordFeatures [B, T, D] -> encoder [B, T, H] -> Dense [B, T, K]

The head decides the loss (`compute_loss`) and the decoder (`predict_step`,
which returns int32 tag ids [B, T] with -1 at padding): Viterbi for the CRF,
argmax for the softmax.
"""

from __future__ import annotations

import keras
from keras import ops

from seqlab.crf import CRF
from seqlab.model.encoders import build_encoder
from seqlab.model.features import WordFeatures
from seqlab.model.heads import argmax_decode, softmax_loss

PAD_TAG = -1


def input_signature() -> dict:
    """The tagger's inputs as TensorFlow specs with unknown batch, time and word-length dimensions."""
    import tensorflow as tf

    return {
        "words": tf.TensorSpec((None, None), tf.int32),  # [B, T]
        "chars": tf.TensorSpec((None, None, None), tf.int32),  # [B, T, W]
        "casing": tf.TensorSpec((None, None), tf.int32),  # [B, T]
    }


@keras.saving.register_keras_serializable(package="seqlab")
class Tagger(keras.Model):
    """Sequence tagger built from a plain-dict `spec` (which is its whole config).

    spec keys: num_words, num_chars, labels, words {...}, encoder {...}, head {...}.
    """

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.features = WordFeatures(spec["num_words"], spec["num_chars"], spec["words"], name="features")
        self.encoder = build_encoder(spec["encoder"])
        self.num_tags = len(spec["labels"])
        self.emission_layer = keras.layers.Dense(self.num_tags, name="emissions")
        head = spec["head"]
        self.crf = None
        if head["name"] == "crf":
            constraints = spec.get("scheme", "iob2") if head.get("constrained") else None
            self.crf = CRF(self.num_tags, labels=spec["labels"], constraints=constraints, pad_value=PAD_TAG, name="crf")

    # -------------------------------------------------------------- building
    def build(self, input_shape=None):
        """Create every weight from the spec alone (input_shape is ignored). Building twice is a no-op."""
        if self.built:
            return
        self.features.build()
        self.encoder.build((None, None, self.features.output_dim))
        self.emission_layer.build((None, None, self.encoder.output_dim))
        if self.crf is not None:
            self.crf.build()
        self.built = True

    def get_build_config(self):
        return {"spec_only": True}  # non-empty, so load_model calls build_from_config

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {"spec": self.spec, "name": self.name}

    # -------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        """{"words": [B, T], "chars": [B, T, W], "casing": [B, T]} -> emission scores float [B, T, K]."""
        mask = inputs["words"] > 0  # [B, T]
        x = self.features(inputs, training=training)  # [B, T, D]
        h = self.encoder(x, mask=mask, training=training)  # [B, T, H]
        return self.emission_layer(h)  # [B, T, K]

    def head_loss(self, emissions, tags, mask):
        """Scalar loss: mean CRF negative log-likelihood per sentence, or token cross-entropy."""
        if self.crf is not None:
            return -ops.mean(self.crf.log_likelihood(emissions, tags, mask))
        return softmax_loss(emissions, tags, mask)

    def decode(self, emissions, mask):
        """Emissions [B, T, K] -> tag ids int32 [B, T], PAD_TAG at padding."""
        if self.crf is not None:
            return self.crf.decode(emissions, mask)
        return argmax_decode(emissions, mask, PAD_TAG)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.head_loss(y_pred, y, x["words"] > 0)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def predict_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        return self.decode(self(x, training=False), x["words"] > 0)


def build_tagger(spec: dict, word_vectors=None) -> Tagger:
    """Create and build a Tagger so that its weights exist.

    `word_vectors`: optional float [num_words, dim] initial word embeddings (pretrained).
    """
    model = Tagger(spec, name="tagger")
    model.build()
    if word_vectors is not None:
        model.features.embed.embeddings.assign(word_vectors)
    return model
