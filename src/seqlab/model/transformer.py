"""A pretrained transformer (a keras-hub BertBackbone) as a tagger's encoder, one vector per word.

    inputs {"subwords": int [B, NW, W], "piece_word": int [B, NW, W]} (seqlab.task.subwords) and the word
    features [B, T, D] (characters, casing; or None) -> [B, T, H (+ D)]

The backbone reads the B x NW subword windows; each word's subtokens are pooled back into one vector
(`pooling`: "first", "mean" or "last" subtoken), so every word gets exactly one tag and the heads, metrics
and figures are those of any encoder. seqlab's character and casing features (the MiniLM is uncased) are
concatenated to the pooled vectors. `trainable=False` keeps the backbone frozen.

The backbone travels inside the tagger's .keras file (its config and weights), so the file alone tags raw
tokens: a preset folder is read only when a model is first built (`from_preset`).
"""

from __future__ import annotations

import keras
from keras import ops

POOLINGS = ("first", "mean", "last")


def load_backbone(folder: str):
    """The BERT-family backbone of a keras-hub preset or Hugging Face folder, with its pretrained weights."""
    import keras_hub

    return keras_hub.models.BertBackbone.from_preset(str(folder))


def build_transformer_encoder(preset: str, pooling: str = "first", dropout: float = 0.1, trainable: bool = True,
                              name: str = "encoder") -> "TransformerEncoder":
    """The `encoder` config's transformer: the backbone `preset` names (seqlab.config.pretrained), loaded now."""
    from seqlab.config.pretrained import backbone_folder

    return TransformerEncoder(load_backbone(backbone_folder(preset)), pooling, dropout, trainable, name=name)


@keras.saving.register_keras_serializable(package="seqlab")
class TransformerEncoder(keras.layers.Layer):
    """A BERT-family backbone whose subtokens are pooled into words; H = the backbone's hidden size.

    Args:
        backbone: a keras-hub Backbone (or its serialized config, from a saved tagger).
        pooling: which subtokens make a word's vector: "first" (BERT's own tagging recipe), "mean" or "last".
        dropout: on the pooled word vectors.
        trainable_backbone: False keeps the backbone's weights fixed (encoder.trainable=false).
        feature_dim: the size of the word features concatenated to the pooled vectors (0: none); `build`
            sets it from its input shape [B, T, D].
    """

    reads_inputs = True  # called as encoder(inputs, features=..., mask=...): it reads the subword inputs

    def __init__(self, backbone, pooling="first", dropout=0.1, trainable_backbone=True, feature_dim=0, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"encoder.pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        if isinstance(backbone, dict):  # from a saved tagger: the architecture only; its weights come from the file
            import keras_hub  # noqa: F401  registers the backbone classes

            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone
        self.backbone.trainable = bool(trainable_backbone)
        for layer in backbone.layers:  # BERT's pooler reads [CLS] for sentence tasks: no gradient reaches it here
            if layer.name == "pooled_dense":
                layer.trainable = False
        self.pooling, self.dropout_rate = pooling, float(dropout)
        self.trainable_backbone, self.feature_dim = bool(trainable_backbone), int(feature_dim)
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.supports_masking = True

    @property
    def hidden_dim(self) -> int:
        return int(self.backbone.hidden_dim)

    @property
    def output_dim(self) -> int:
        return self.hidden_dim + self.feature_dim

    def build(self, input_shape=None):
        """input_shape: the word features' [B, T, D] (D may be 0). The backbone comes built, with its weights."""
        self.feature_dim = int(input_shape[-1] or 0) if input_shape else self.feature_dim
        self.built = True

    def call(self, inputs, features=None, mask=None, training=False):
        """inputs: the tagger's input dict; features: word features float [B, T, D] or None; mask: bool [B, T]."""
        x = features
        subwords, owners = inputs["subwords"], inputs["piece_word"]  # [B, NW, W]
        shape = ops.shape(subwords)
        batch, windows, width = shape[0], shape[1], shape[2]
        flat = ops.reshape(subwords, (-1, width))  # [B*NW, W]
        hidden = self.backbone({"token_ids": flat, "segment_ids": ops.zeros_like(flat),
                                "padding_mask": ops.cast(ops.not_equal(flat, 0), "int32")},
                               training=training and self.trainable_backbone)["sequence_output"]  # [B*NW, W, H]
        hidden = ops.reshape(hidden, (batch, windows * width, self.hidden_dim))  # [B, S, H], S = NW * W
        owners = ops.reshape(owners, (batch, windows * width))  # [B, S]
        time = ops.shape(inputs["words"])[1]
        pooled = pool_words(ops.cast(hidden, "float32"), owners, time, self.pooling)  # [B, T, H]
        if x is not None and self.feature_dim:
            pooled = ops.concatenate([pooled, ops.cast(x, pooled.dtype)], axis=-1)
        out = self.dropout(pooled, training=training)
        return out if mask is None else out * ops.cast(mask, out.dtype)[..., None]

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone), pooling=self.pooling,
                      dropout=self.dropout_rate, trainable_backbone=self.trainable_backbone, feature_dim=self.feature_dim)
        return config


def pool_words(hidden, owners, time, pooling: str):
    """Subtoken vectors float [B, S, H] and their words int [B, S] (-1: none) -> word vectors [B, T, H].

    first / last: the word's first / last subtoken; mean: the average of its subtokens. A word without
    subtokens gets zeros."""
    member = ops.cast(ops.equal(owners[:, None, :], ops.arange(time, dtype=owners.dtype)[None, :, None]), hidden.dtype)
    if pooling == "mean":
        weights = member / ops.maximum(ops.sum(member, axis=-1, keepdims=True), 1.0)  # [B, T, S]
    else:
        order = ops.cumsum(member, axis=-1) if pooling == "first" else ops.flip(ops.cumsum(ops.flip(member, -1), -1), -1)
        weights = member * ops.cast(ops.equal(order, 1.0), hidden.dtype)  # one subtoken per word
    return ops.matmul(weights, hidden)  # [B, T, H]
