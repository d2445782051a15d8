"""The CRF's loss and Viterbi as XLA-compiled TensorFlow functions, for use inside graphs that are not.

`CRF` (with `xla=True`, its default) calls them when its `nll` or `viterbi` is traced into a plain
`tf.function` (Keras' fit and predict): their loops over time then run fused, at 5x pytorch-crf for decoding
(docs/benchmarks.md). The weights are arguments, not captured variables, so one compiled
function serves every CRF of the same size, constraints and padding id: XLA keeps each compiled
function for the life of the process, and functions owned by each layer piled up over the trials
of a search (about 1,000 memory maps and 80 MB per model, measured, until LLVM failed with
"Cannot allocate memory").

Time is padded to a multiple of `BUCKET` (masked, so the results are unchanged): XLA compiles
once per padded shape. TensorFlow only.
"""

from __future__ import annotations

import numpy as np

from seqlab.crf import recursions
from seqlab.crf.buckets import pad_to_bucket

_COMPILED: dict = {}  # (name, penalties, pad value) -> tf.function(jit_compile=True)


class Penalties:
    """A CRF's constraint penalties (0 where allowed, -1e4 where forbidden) and its padding id."""

    def __init__(self, trans: np.ndarray, start: np.ndarray, end: np.ndarray, pad_value: int):
        self.trans, self.start, self.end, self.pad_value = trans, start, end, int(pad_value)

    def key(self, name: str) -> tuple:
        return name, self.trans.tobytes(), self.start.tobytes(), self.end.tobytes(), self.trans.shape, self.pad_value

    def likelihood_scores(self, transitions, start, end):
        """The weights plus the penalties: forbidden transitions get (nearly) zero probability."""
        return transitions + self.trans, start + self.start, end + self.end

    def decode_scores(self, transitions, start, end):
        """The weights, with forbidden transitions at -inf: never decoded."""
        import tensorflow as tf

        neg = tf.constant(float("-inf"))
        return (tf.where(self.trans < 0, neg, transitions), tf.where(self.start < 0, neg, start),
                tf.where(self.end < 0, neg, end))


def _compiled(penalties: Penalties, name: str, body):
    """`body(*inputs, transitions, start, end)` compiled by XLA once per (name, penalties, pad value)."""
    import tensorflow as tf

    key = penalties.key(name)
    if key not in _COMPILED:
        _COMPILED[key] = tf.function(body, jit_compile=True, reduce_retracing=True, autograph=False)
    return _COMPILED[key]


def clear() -> None:
    """Forget the compiled functions (tests that count compilations)."""
    _COMPILED.clear()


def compiled_names() -> set[str]:
    return {key[0] for key in _COMPILED}


def viterbi(penalties: Penalties, emissions, mask, weights):
    """recursions.viterbi compiled: paths int32 [B, T'] and scores [B], T' padded to a bucket (callers crop).

    emissions float32 [B, T, K], mask bool [B, T], weights (transitions [K, K], start [K], end [K])."""

    def body(emissions, mask, transitions, start, end):
        trans, start, end = penalties.decode_scores(transitions, start, end)
        return recursions.viterbi(emissions, mask, trans, start, end, penalties.pad_value)

    return _compiled(penalties, "viterbi", body)(*pad_to_bucket(emissions, mask), *_values(weights))


def _values(weights) -> list:
    """The weights' current values as tensors (Keras variables hold theirs in `.value`)."""
    import tensorflow as tf

    return [tf.convert_to_tensor(getattr(w, "value", w)) for w in weights]


def nll(penalties: Penalties, emissions, mask, tags, weights, reduction: str):
    """The negative log-likelihood, reduced over the batch, with its value and gradient from one
    XLA-compiled call; backpropagation scales that gradient. A tape cannot reach into an XLA function
    whose loops keep intermediate values (TensorFlow refuses TensorLists at the XLA boundary), and this
    way nothing is computed twice. `weights`: the CRF's three variables (their gradients are returned
    to the tape by identity)."""
    import tensorflow as tf

    emissions, mask, tags = pad_to_bucket(emissions, mask, tags)

    def body(emissions, mask, tags, transitions, start, end):
        with tf.GradientTape() as tape:  # inside the compiled function: XLA differentiates the loops
            tape.watch([emissions, transitions, start, end])
            scores = penalties.likelihood_scores(transitions, start, end)
            loss = recursions.reduce(-recursions.log_likelihood(emissions, tags, mask, *scores), reduction)
        return loss, tape.gradient(loss, [emissions, transitions, start, end])

    fused = _compiled(penalties, f"nll_{reduction}", body)
    position = {id(getattr(w, "value", w)): i for i, w in enumerate(weights)}

    @tf.custom_gradient
    def loss_of(emissions):
        loss, grads = fused(emissions, mask, tags, *_values(weights))  # read here: the tape sees the variables

        def grad(dy, variables=None):
            return dy * grads[0], [dy * grads[1 + position[id(v)]] for v in variables or []]

        return loss, grad

    return loss_of(emissions)
