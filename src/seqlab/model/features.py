"""Word representations: a word embedding, optionally joined by a character CNN."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlab")
class CharCNN(keras.layers.Layer):
    """Character CNN after Ma & Hovy (2016): embed characters, convolve, max-pool per word.

    Input: char ids int [B, T, W] (0 = padding). Output: [B, T, filters].
    """

    def __init__(self, num_chars, dim=30, filters=30, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.num_chars, self.dim, self.filters, self.kernel_size = num_chars, dim, filters, kernel_size
        self.embed = keras.layers.Embedding(num_chars, dim, name="char_embedding")
        self.conv = keras.layers.Conv1D(filters, kernel_size, padding="same", activation="tanh", name="char_conv")

    def build(self, input_shape):
        self.embed.build(input_shape)
        self.conv.build((None, None, self.dim))

    def call(self, char_ids):
        shape = ops.shape(char_ids)  # B, T, W
        flat = ops.reshape(char_ids, (-1, shape[2]))  # [B*T, W]
        x = self.conv(self.embed(flat))  # [B*T, W, F]
        real = (flat > 0)[..., None]  # [B*T, W, 1]
        x = ops.max(ops.where(real, x, -2.0), axis=1)  # tanh >= -1, so -2 never wins over a real char
        x = ops.where(ops.any(real, axis=1), x, 0.0)  # padded words: zeros
        return ops.reshape(x, (shape[0], shape[1], self.filters))

    def get_config(self):
        config = super().get_config()
        config.update(num_chars=self.num_chars, dim=self.dim, filters=self.filters, kernel_size=self.kernel_size)
        return config


@keras.saving.register_keras_serializable(package="seqlab")
class WordFeatures(keras.layers.Layer):
    """Concatenated word embedding [+ character CNN], then dropout.

    Input: {"words": int [B, T], "chars": int [B, T, W]}. Output: [B, T, D].
    """

    def __init__(self, num_words, dim=100, dropout=0.5, chars=None, **kwargs):
        super().__init__(**kwargs)
        self.num_words, self.dim, self.dropout_rate, self.chars = num_words, dim, dropout, chars
        self.embed = keras.layers.Embedding(num_words, dim, name="word_embedding")
        self.char_cnn = CharCNN(**chars, name="char_cnn") if chars else None
        self.dropout = keras.layers.Dropout(dropout)

    @property
    def output_dim(self) -> int:
        return self.dim + (self.chars["filters"] if self.chars else 0)

    def build(self, input_shape):
        self.embed.build(input_shape["words"])
        if self.char_cnn is not None:
            self.char_cnn.build(input_shape["chars"])

    def call(self, inputs, training=False):
        x = self.embed(inputs["words"])
        if self.char_cnn is not None:
            x = ops.concatenate([x, self.char_cnn(inputs["chars"])], axis=-1)
        return self.dropout(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(num_words=self.num_words, dim=self.dim, dropout=self.dropout_rate, chars=self.chars)
        return config
