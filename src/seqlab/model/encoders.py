"""Contextual encoders: [B, T, D] word features + bool mask [B, T] -> [B, T, H]."""

from __future__ import annotations

import logging

import keras
from keras import ops

log = logging.getLogger(__name__)
_warned_recurrent_dropout = False


def _warn_recurrent_dropout_once(rate: float) -> None:
    global _warned_recurrent_dropout
    if rate > 0 and not _warned_recurrent_dropout:
        _warned_recurrent_dropout = True
        log.warning("encoder.recurrent_dropout=%s turns off the fused (cuDNN/oneDNN) RNN kernel: expect slower training", rate)


@keras.saving.register_keras_serializable(package="seqlab")
class RNNEncoder(keras.layers.Layer):
    """Stacked bidirectional LSTM or GRU; `units` per direction, so H = 2 * units."""

    def __init__(self, cell="lstm", layers=1, units=100, dropout=0.5, recurrent_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.cell, self.num_layers, self.units = cell, layers, units
        self.dropout_rate, self.recurrent_dropout = dropout, recurrent_dropout
        _warn_recurrent_dropout_once(recurrent_dropout)
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


@keras.saving.register_keras_serializable(package="seqlab")
class IDCNNEncoder(keras.layers.Layer):
    """Iterated dilated CNN (Strubell et al. 2017); H = filters.

    A width-`kernel_size` convolution maps the words to `filters` channels;
    then a block of dilated convolutions (e.g. dilations 1, 2, 4) is applied
    `blocks` times with the same weights each time, so the context width grows
    without adding parameters. Padding is zeroed before every convolution.
    """

    def __init__(self, filters=300, kernel_size=3, dilations=(1, 2, 4), blocks=4, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.filters, self.kernel_size, self.dilations = filters, kernel_size, [int(d) for d in dilations]
        self.blocks, self.dropout_rate = blocks, dropout
        self.initial = keras.layers.Conv1D(filters, kernel_size, padding="same", name="initial_conv")
        self.block = [
            keras.layers.Conv1D(filters, kernel_size, padding="same", dilation_rate=d, activation="relu", name=f"dilated_{d}")
            for d in self.dilations
        ]
        self.dropout = keras.layers.Dropout(dropout)

    @property
    def output_dim(self) -> int:
        return self.filters

    def build(self, input_shape):
        self.initial.build(input_shape)
        for conv in self.block:
            conv.build((*input_shape[:-1], self.filters))

    def call(self, x, mask=None, training=False):
        keep = ops.ones_like(x[..., :1]) if mask is None else ops.cast(mask, x.dtype)[..., None]  # [B, T, 1]
        x = self.initial(x * keep)
        for _ in range(self.blocks):  # the same weights on every iteration
            for conv in self.block:
                x = conv(x * keep)
            x = self.dropout(x, training=training)
        return x * keep

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, dilations=self.dilations,
            blocks=self.blocks, dropout=self.dropout_rate,
        )
        return config


def build_encoder(spec: dict) -> keras.layers.Layer:
    """From the `encoder` config: its `name` picks the class in `seqlab.config.choices.ENCODERS`, the rest are its arguments."""
    from seqlab.config import choices

    spec = dict(spec)
    option = choices.choose(choices.ENCODERS, spec.pop("name"), "encoder.name")
    return option.load()(name="encoder", **option.args, **spec)
