"""Contextual encoders: [B, T, D] word features + bool mask [B, T] -> [B, T, H]."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlab")
class RNNEncoder(keras.layers.Layer):
    """Stacked bidirectional LSTM or GRU; `units` per direction, so H = 2 * units."""

    def __init__(self, cell="lstm", layers=1, units=100, dropout=0.5, recurrent_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.cell, self.num_layers, self.units = cell, layers, units
        self.dropout_rate, self.recurrent_dropout = dropout, recurrent_dropout
        rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
        self.rnns = [
            keras.layers.Bidirectional(
                rnn(units, return_sequences=True, recurrent_dropout=recurrent_dropout), name=f"bi{cell}_{i}"
            )
            for i in range(layers)
        ]
        self.dropout = keras.layers.Dropout(dropout)

    @property
    def output_dim(self) -> int:
        return 2 * self.units

    def build(self, input_shape):
        shape = input_shape
        for rnn in self.rnns:
            rnn.build(shape)
            shape = (*shape[:-1], 2 * self.units)

    def call(self, x, mask=None, training=False):
        for rnn in self.rnns:
            x = self.dropout(rnn(x, mask=mask, training=training), training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=self.cell, layers=self.num_layers, units=self.units,
            dropout=self.dropout_rate, recurrent_dropout=self.recurrent_dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="seqlab")
class CNNEncoder(keras.layers.Layer):
    """Stacked 'same' Conv1D layers with ReLU; H = filters.

    Padded positions are zeroed before every convolution, so padding never
    leaks into the outputs of real tokens.
    """

    def __init__(self, layers=2, filters=200, kernel_size=3, dropout=0.5, residual=True, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_layers, self.filters, self.kernel_size = layers, filters, kernel_size
        self.dropout_rate, self.residual = dropout, residual
        self.convs = [
            keras.layers.Conv1D(filters, kernel_size, padding="same", activation="relu", name=f"conv_{i}")
            for i in range(layers)
        ]
        self.dropout = keras.layers.Dropout(dropout)

    @property
    def output_dim(self) -> int:
        return self.filters

    def build(self, input_shape):
        shape = input_shape
        for conv in self.convs:
            conv.build(shape)
            shape = (*shape[:-1], self.filters)

    def call(self, x, mask=None, training=False):
        keep = ops.ones_like(x[..., :1]) if mask is None else ops.cast(mask, x.dtype)[..., None]  # [B, T, 1]
        for i, conv in enumerate(self.convs):
            h = conv(x * keep)
            x = h + x if (self.residual and i > 0) else h
            x = self.dropout(x, training=training)
        return x * keep

    def get_config(self):
        config = super().get_config()
        config.update(
            layers=self.num_layers, filters=self.filters, kernel_size=self.kernel_size,
            dropout=self.dropout_rate, residual=self.residual,
        )
        return config


def build_encoder(spec: dict) -> keras.layers.Layer:
    """From the `encoder` config: bilstm | bigru | cnn."""
    spec = dict(spec)
    name = spec.pop("name")
    if name in ("bilstm", "bigru"):
        return RNNEncoder(cell=name[2:], name="encoder", **spec)
    if name == "cnn":
        return CNNEncoder(name="encoder", **spec)
    raise ValueError(f"unknown encoder {name!r}")
