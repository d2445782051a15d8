"""The softmax head's loss and decoder. The CRF head is `seqlab.crf.CRF`."""

from __future__ import annotations

from keras import ops


def softmax_loss(emissions, tags, mask):
    """Mean token cross-entropy over real tokens only.

    emissions float [B, T, K] (logits), tags int [B, T], mask bool [B, T] -> scalar.
    """
    emissions = ops.cast(emissions, "float32")
    tags = ops.clip(ops.cast(tags, "int32"), 0, ops.shape(emissions)[-1] - 1)  # padded tags may hold anything
    per_token = ops.sparse_categorical_crossentropy(tags, emissions, from_logits=True)  # [B, T]
    maskf = ops.cast(mask, "float32")
    return ops.sum(per_token * maskf) / ops.maximum(ops.sum(maskf), 1.0)


def argmax_decode(emissions, mask, pad_value=-1):
    """Per-token argmax: int32 [B, T], pad_value at padding. Only right for a softmax head."""
    best = ops.cast(ops.argmax(emissions, axis=-1), "int32")
    return ops.where(mask, best, pad_value)
