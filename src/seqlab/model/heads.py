"""Tagger heads: emission scores [B, T, K] -> a loss and decoded tag ids.

Every head offers the same interface, so the tagger picks one in its
constructor and never asks which it has:

    head.loss(emissions, tags, mask)    float [B, T, K], int [B, T], bool [B, T] -> scalar
    head.decode(emissions, mask)        -> int32 [B, T], pad_value at padding
    head.probabilities(emissions, mask) -> float32 [B, T, K]: p(y_t = k | x), 0 at padding
    head.nbest_log_probs(emissions, k, mask) -> int32 [B, k, T] paths, float32 [B, k] log p(path | x)
    head.transition_figure(predicted)   -> matplotlib Figure (transition_matrix.png)

`SoftmaxHead` scores each token alone (cross-entropy, argmax); `CRFHead` is the
linear-chain CRF of `seqlab.crf` (negative log-likelihood, Viterbi). Their
probabilities are exact for the model they are: the softmax of each token alone,
the CRF's marginals by forward-backward, and each n-best path's probability
(the softmax's as a CRF with zero transitions over log-probabilities, whose log Z is 0).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from seqlab.config import choices
from seqlab.crf import CRF, allowed_transitions


def softmax_loss(emissions, tags, mask, reduction="mean", class_weights=None):
    """Token cross-entropy over real tokens only, averaged over them ("mean") or summed ("sum"); each token's
    term times class_weights[its tag] when given (float [K]: seqlab.config.class_weights).

    emissions float [B, T, K] (logits), tags int [B, T], mask bool [B, T] -> scalar.
    """
    emissions = ops.cast(emissions, "float32")
    tags = gold_ids(tags, ops.shape(emissions)[-1])
    per_token = ops.sparse_categorical_crossentropy(tags, emissions, from_logits=True)  # [B, T]
    maskf = ops.cast(mask, "float32")
    weighted = per_token if class_weights is None else per_token * ops.take(class_weights, tags)
    total = ops.sum(weighted * maskf)
    return total if reduction == "sum" else total / ops.maximum(ops.sum(maskf), 1.0)


def gold_ids(tags, num_tags):
    """Gold tag ids int32 [B, T] clipped into [0, K): padded positions may hold anything (the mask drops them)."""
    return ops.clip(ops.cast(tags, "int32"), 0, num_tags - 1)


def margin_costs(tags, class_weights, num_tags: int):
    """Softmax-margin costs float [B, T, K]: class_weights[y_t] at every tag k != y_t, 0 at the gold tag."""
    tags = gold_ids(tags, num_tags)
    wrong = 1.0 - ops.one_hot(tags, num_tags, dtype="float32")  # [B, T, K]
    return ops.take(class_weights, tags)[:, :, None] * wrong


def argmax_decode(emissions, mask, pad_value=-1):
    """Per-token argmax: int32 [B, T], pad_value at padding. Only right for a softmax head."""
    best = ops.cast(ops.argmax(emissions, axis=-1), "int32")
    return ops.where(mask, best, pad_value)


def _allowed(labels, scheme):
    return allowed_transitions(list(labels), scheme) if scheme else None


@keras.saving.register_keras_serializable(package="seqlab")
class SoftmaxHead(keras.layers.Layer):
    """Independent per-token softmax over K = len(labels) tags. No weights.

    Args:
        labels: the tag names (K).
        scheme: the tag scheme of span labels (iob2, bioes), or None; used only to mark
            forbidden transitions in the figure (the softmax cannot avoid them).
        constrained: ignored (only a CRF can enforce constraints); kept so every head takes one config.
        pad_value: the id `decode` writes at padding.
        reduction: "mean" (over real tokens) or "sum" (over the batch's tokens).
        class_weights: one loss weight per label (K floats, seqlab.config.class_weights.resolve), or None.
    """

    def __init__(self, labels, scheme=None, constrained=False, pad_value=-1, reduction="mean", class_weights=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.labels, self.scheme, self.constrained, self.pad_value = tuple(labels), scheme, constrained, int(pad_value)
        self.reduction = reduction
        self.class_weights = _weights(class_weights, len(self.labels))
        self.xla = False  # the heads' shared knob (see CRF); nothing here loops over time, so nothing to compile

    def build(self, input_shape=None):
        self.built = True  # no weights

    def loss(self, emissions, tags, mask):
        return softmax_loss(emissions, tags, mask, self.reduction, self.class_weights)

    def decode(self, emissions, mask):
        return argmax_decode(emissions, mask, self.pad_value)

    def probabilities(self, emissions, mask):
        """p(y_t = k | x): each token's softmax, float32 [B, T, K]; 0 at padding."""
        probs = ops.softmax(ops.cast(emissions, "float32"), axis=-1)
        return probs * ops.cast(mask, "float32")[:, :, None]

    def nbest_log_probs(self, emissions, k: int, mask):
        """The k most probable tag sequences when tokens are independent, best first: int32 [B, k, T] and their
        log-probabilities float32 [B, k] (-inf where fewer than k sequences exist)."""
        from seqlab.crf import recursions

        time, n = ops.shape(emissions)[1], len(self.labels)
        log_probs = recursions.pad_time(ops.log_softmax(ops.cast(emissions, "float32"), axis=-1), 0.0)
        zeros = ops.zeros((n,), "float32")
        paths, scores = recursions.nbest(log_probs, recursions.pad_time(ops.cast(mask, "bool"), False),
                                         ops.zeros((n, n), "float32"), zeros, zeros, k, self.pad_value)
        return paths[:, :, :time], scores

    def call(self, emissions, mask=None):
        return emissions

    def transition_figure(self, predicted: list[np.ndarray]):
        """What was predicted: transition shares between the ids of `predicted` (one int array per sentence)."""
        from seqlab.model.transition_figures import plot_predicted_transitions, tag_bigram_counts

        counts = tag_bigram_counts(predicted, len(self.labels))
        return plot_predicted_transitions(counts, list(self.labels), _allowed(self.labels, self.scheme), self.scheme or "")

    def get_config(self):
        config = super().get_config()
        config.update(labels=list(self.labels), scheme=self.scheme, constrained=self.constrained, pad_value=self.pad_value,
                      reduction=self.reduction, class_weights=_listed(self.class_weights))
        return config


@keras.saving.register_keras_serializable(package="seqlab")
class CRFHead(CRF):
    """The linear-chain CRF as a head: loss = negative log-likelihood per sentence, decode = Viterbi.

    Args:
        labels: the tag names (K).
        scheme: the tag scheme of span labels (iob1, iob2, bioes), or None (e.g. POS tags).
        constrained: with a scheme, never score nor decode a transition it forbids.
        pad_value: the id `decode` writes at padding.
        reduction: "mean" or "sum" of the sentences' losses over the batch.
        class_weights: K floats (seqlab.config.class_weights.resolve), or None: the loss becomes softmax-margin,
            log Z over emissions + margin_costs(tags) [B, T, K] minus the gold path's score (decoding is unchanged).
    """

    def __init__(self, labels, scheme=None, constrained=True, pad_value=-1, reduction="mean", class_weights=None,
                 **kwargs):
        for key in ("num_tags", "constraints"):  # CRF's own arguments, derived here
            kwargs.pop(key, None)
        super().__init__(len(labels), labels=list(labels), constraints=scheme if constrained else None,
                         pad_value=pad_value, **kwargs)
        self.scheme, self.constrained, self.reduction = scheme, constrained, reduction
        self.class_weights = _weights(class_weights, len(labels))

    def loss(self, emissions, tags, mask):
        if self.class_weights is not None:  # the gold path's cost is 0, so its score is unchanged
            emissions = ops.cast(emissions, "float32") + margin_costs(tags, self.class_weights, self.num_tags)
        return self.nll(emissions, tags, mask, self.reduction)

    def probabilities(self, emissions, mask):
        """The exact marginals p(y_t = k | x), float32 [B, T, K]; 0 at padding."""
        return self.marginals(emissions, mask)

    def nbest_log_probs(self, emissions, k: int, mask):
        """The k best paths, best first: int32 [B, k, T] and log p(path | x) float32 [B, k] (-inf past the legal ones)."""
        paths, scores = self.nbest(emissions, k, mask)
        return paths, scores - self.log_partition(emissions, mask)[:, None]

    def transition_figure(self, predicted=None):
        """The learned scores, <start> row and <end> column; forbidden cells hatched."""
        from seqlab.model.transition_figures import plot_crf_transitions

        weights = [keras.ops.convert_to_numpy(w) for w in (self.transitions, self.start_transitions, self.end_transitions)]
        return plot_crf_transitions(*weights, list(self.labels), _allowed(self.labels, self.constraints), self.constraints or "")

    def get_config(self):
        config = super().get_config()
        for key in ("num_tags", "constraints"):
            config.pop(key)
        config.update(scheme=self.scheme, constrained=self.constrained, reduction=self.reduction,
                      class_weights=_listed(self.class_weights))
        return config


def _weights(class_weights, num_tags: int):
    """K loss weights as a float32 array (None: unweighted)."""
    if class_weights is None:
        return None
    weights = np.asarray(class_weights, dtype="float32")
    if weights.shape != (num_tags,):
        raise ValueError(f"class_weights needs one weight per tag ({num_tags}), got shape {weights.shape}")
    return weights


def _listed(weights):
    return None if weights is None else [float(w) for w in weights]


def build_head(spec: dict, labels: list[str], scheme: str | None, pad_value: int = -1) -> keras.layers.Layer:
    """From the `head` config ({"name": "crf", "constrained": true}) and the task's labels and scheme."""
    spec = dict(spec)
    option = choices.choose(choices.HEADS, spec.pop("name"), "head.name")
    return option.load()(labels, scheme=scheme, pad_value=pad_value, name="head", **spec)
