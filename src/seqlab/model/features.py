"""Word representations: word embedding [+ characters] [+ casing], then dropout.

    {"words": int [B, T], "chars": int [B, T, W], "casing": int [B, T]} -> [B, T, D]

Characters follow Ma & Hovy (2016, `cnn`: embedding 30, 30 filters of width 3,
max-pooling) or Lample et al. (2016, `lstm`: a BiLSTM with 25 units per
direction); casing follows Reimers & Gurevych (2017).
"""

from __future__ import annotations

import keras
from keras import ops

@keras.saving.register_keras_serializable(package="seqlab")
class CharCNN(keras.layers.Layer):
    """Character ids int [B, T, W] (0 = padding) -> [B, T, filters]: convolve, max-pool per word.

    activation: "tanh" (Ma & Hovy 2016) or "linear" (NCRF++); dropout: on the character embeddings
    (NCRF++ drops them with its dropout, 0.5), while training only.
    """

    def __init__(self, num_chars, dim=30, filters=30, kernel_size=3, activation="tanh", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_chars, self.dim, self.filters, self.kernel_size = num_chars, dim, filters, kernel_size
        self.activation, self.dropout_rate = activation, float(dropout)
        self.embed = keras.layers.Embedding(num_chars, dim, name="char_embedding")
        self.conv = keras.layers.Conv1D(filters, kernel_size, padding="same", activation=activation, name="char_conv")
        self.dropout = keras.layers.Dropout(self.dropout_rate) if self.dropout_rate > 0 else None

    @property
    def output_dim(self) -> int:
        return self.filters

    def build(self, input_shape):
        self.embed.build(input_shape)
        self.conv.build((None, None, self.dim))

    def call(self, char_ids, training=False):
        shape = ops.shape(char_ids)  # B, T, W
        flat = ops.reshape(char_ids, (-1, shape[2]))  # [B*T, W]
        real = (flat > 0)[..., None]  # [B*T, W, 1]
        embedded = self.embed(flat)
        if self.dropout is not None:
            embedded = self.dropout(embedded, training=training)
        x = self.conv(embedded * ops.cast(real, "float32"))  # [B*T, W, F]; padding chars are zeros
        x = ops.max(ops.where(real, x, -1e9), axis=1)  # padding never wins over a real char
        x = ops.where(ops.any(real, axis=1), x, 0.0)  # padded words: zeros
        return ops.reshape(x, (shape[0], shape[1], self.filters))

    def get_config(self):
        config = super().get_config()
        config.update(num_chars=self.num_chars, dim=self.dim, filters=self.filters, kernel_size=self.kernel_size,
                      activation=self.activation, dropout=self.dropout_rate)
        return config


@keras.saving.register_keras_serializable(package="seqlab")
class CharLSTM(keras.layers.Layer):
    """Character ids int [B, T, W] -> [B, T, 2 * units]: final states of a character BiLSTM."""

    def __init__(self, num_chars, dim=25, units=25, **kwargs):
        super().__init__(**kwargs)
        self.num_chars, self.dim, self.units = num_chars, dim, units
        self.embed = keras.layers.Embedding(num_chars, dim, name="char_embedding")
        self.rnn = keras.layers.Bidirectional(keras.layers.LSTM(units), name="char_bilstm")

    @property
    def output_dim(self) -> int:
        return 2 * self.units

    def build(self, input_shape):
        self.embed.build(input_shape)
        self.rnn.build((None, None, self.dim))

    def call(self, char_ids, training=False):
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[2]))  # [B*T, W]
        real = flat > 0
        x = self.rnn(self.embed(flat), mask=real)  # [B*T, 2U]
        x = ops.where(ops.any(real, axis=1, keepdims=True), x, 0.0)
        return ops.reshape(x, (shape[0], shape[1], 2 * self.units))

    def get_config(self):
        config = super().get_config()
        config.update(num_chars=self.num_chars, dim=self.dim, units=self.units)
        return config


@keras.saving.register_keras_serializable(package="seqlab")
class WordFeatures(keras.layers.Layer):
    """Concatenated word embedding, character features and casing embedding, then dropout.

    `words` is the `words` config as a dict (see WordsConfig). With
    `word_dropout` > 0, training replaces each word by UNK with that probability,
    drawn from a generator seeded by `seed`. `num_casings` is the number of casing
    classes the preprocessing knows (index 0 = padding); `unk_id` the unknown word's id
    (the task's: this layer never reads a vocabulary). `num_fixed`: word ids num_words ..
    num_words + num_fixed - 1 are words only pretrained vectors know; their vectors (float16
    [num_fixed, dim], `fixed_embedding`) are never trained. `words["dim"] == 0`: no word
    embedding (a transformer encoder brings its own).
    """

    def __init__(self, num_words, num_chars, words, num_casings=8, seed=1, unk_id=1, num_fixed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_words, self.num_chars, self.words = num_words, num_chars, dict(words)
        self.num_casings, self.seed, self.unk_id = int(num_casings), int(seed), int(unk_id)
        w = self.words
        self.num_fixed = int(num_fixed) if w["dim"] else 0
        self.embed = (keras.layers.Embedding(num_words, w["dim"], name="word_embedding", trainable=not w.get("freeze", False))
                      if w["dim"] else None)
        self.fixed_embedding = None
        chars = w.get("chars", "none")
        if chars == "cnn":
            self.char_layer = CharCNN(num_chars, w["char_dim"], w["char_filters"], w["char_kernel"],
                                      w.get("char_activation", "tanh"), w.get("char_dropout", 0.0), name="char_cnn")
        elif chars == "lstm":
            self.char_layer = CharLSTM(num_chars, w["char_dim"], w["char_units"], name="char_lstm")
        else:
            self.char_layer = None
        self.casing = keras.layers.Embedding(self.num_casings, w["casing_dim"], name="casing_embedding") if w.get("casing") else None
        self.dropout = keras.layers.Dropout(w["dropout"])
        self.word_dropout = float(w.get("word_dropout", 0.0))
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    @property
    def output_dim(self) -> int:
        dim = self.words["dim"] + (self.char_layer.output_dim if self.char_layer else 0)
        return dim + (self.words["casing_dim"] if self.casing else 0)

    def build(self, input_shape=None):
        if self.embed is not None:
            self.embed.build((None, None))
        if self.num_fixed:
            self.fixed_embedding = self.add_weight(shape=(self.num_fixed, self.words["dim"]), dtype="float16",
                                                   initializer="zeros", trainable=False, name="fixed_embedding")
        if self.char_layer is not None:
            self.char_layer.build((None, None))
        if self.casing is not None:
            self.casing.build((None, None))

    def call(self, inputs, training=False):
        ids = inputs["words"]  # [B, T]
        if training and self.word_dropout > 0:
            drop = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.word_dropout
            ids = ops.where(ops.logical_and(drop, ids > self.unk_id), self.unk_id, ids)
        parts = [self.embed_words(ids)] if self.embed is not None else []  # [B, T, dim]
        if self.char_layer is not None:
            parts.append(self.char_layer(inputs["chars"], training=training))  # [B, T, C]
        if self.casing is not None:
            parts.append(self.casing(inputs["casing"]))  # [B, T, casing_dim]
        if not parts:
            return None
        x = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        return self.dropout(x, training=training)

    def embed_words(self, ids):
        """Word ids int [B, T] -> float [B, T, dim]: trained vectors below num_words, fixed ones above."""
        if not self.num_fixed:
            return self.embed(ids)
        trained = self.embed(ops.minimum(ids, self.num_words - 1))
        fixed = ops.take(self.fixed_embedding, ops.clip(ids - self.num_words, 0, self.num_fixed - 1), axis=0)
        return ops.where((ids >= self.num_words)[..., None], ops.cast(fixed, trained.dtype), trained)

    def get_config(self):
        config = super().get_config()
        config.update(num_words=self.num_words, num_chars=self.num_chars, words=self.words, num_casings=self.num_casings,
                      seed=self.seed, unk_id=self.unk_id, num_fixed=self.num_fixed)
        return config
