"""`CRF`: the linear-chain conditional random field as a Keras 3 layer.

Lafferty et al. (2001); the layout follows Lample et al. (2016): emission scores from an encoder,
learned tag-to-tag transition scores, and scores for starting and ending in each tag. The
mathematics is in recursions.py (pure functions of emissions, mask and scores); this layer owns the
weights, the constraints between tags and the checks of its inputs, and calls them.

Masks are bool [B, T], True for real tokens, padding on the right only. All math runs in float32,
whatever the dtype of the emissions. Forbidden transitions (`constraints="iob1"`, `"iob2"` or
`"bioes"` with `labels`) get a score of -10000 in the likelihood, which underflows to exactly zero
probability in float32, and -inf in decoding.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from seqlab.crf import recursions
from seqlab.crf.constraints import allowed_transitions
from seqlab.crf.recursions import pad_time
from seqlab.crf.xla import Penalties

FORBIDDEN = -1.0e4  # added to forbidden transitions: exp(FORBIDDEN) == 0 in float32
XLA_MODES = (False, True, "decode")


@keras.saving.register_keras_serializable(package="seqlab")
class CRF(keras.layers.Layer):
    """Linear-chain CRF over `num_tags` tags.

    Args:
        num_tags: K, the number of tags.
        labels: optional tag names (length K); needed for `constraints`.
        constraints: None, "iob1", "iob2" or "bioes": forbid the transitions that scheme does not
            allow (e.g. O -> I-PER, start -> I-PER).
        pad_value: the tag id written at padded positions by `decode`/`nbest`.
        xla: TensorFlow only. True (the default) runs `nll` (value and gradient) and `viterbi` as
            XLA-compiled functions (seqlab.crf.xla) whenever they are traced into a graph (`tf.function`,
            Keras' fit and predict), so their loops run fused even in a model that XLA does not compile:
            on a CPU 5-10x pytorch-crf's Viterbi and 2-3x its loss and gradient (docs/crf.md#7-speed),
            for one compilation (about a second) per 8 time steps of padded length. "train" compiles `nll`
            only, "decode" `viterbi` only; False keeps plain graph loops. Eager calls, and the other backends, ignore
            it. Not saved: the tagger sets it (seqlab.model.jit.xla_inside_graphs).

    Weights: `transitions` [K, K] (from, to), `start_transitions` [K], `end_transitions` [K].

    Example:
        crf = CRF(3, labels=["O", "B-PER", "I-PER"], constraints="iob2")
        nll = crf.nll(emissions, tags, mask)          # scalar: the mean over the batch
        paths = crf.decode(emissions, mask)           # int32 [B, T]
    """

    def __init__(self, num_tags, labels=None, constraints=None, pad_value=-1, xla=True, **kwargs):
        kwargs.setdefault("dtype", "float32")  # stay float32 under mixed precision
        super().__init__(**kwargs)
        self.xla = xla if xla in ("train", "decode") else bool(xla)
        self.supports_masking = True  # `call` is the identity: the emissions' mask passes through
        if labels is not None and len(labels) != num_tags:
            raise ValueError(f"CRF got num_tags={num_tags} but {len(labels)} labels")
        if constraints is not None and labels is None:
            raise ValueError("CRF constraints need the tag names: pass labels=[...]")
        self.num_tags = int(num_tags)
        self.labels = tuple(labels) if labels is not None else None
        self.constraints = constraints
        self.pad_value = int(pad_value)
        k = self.num_tags
        if constraints is None:
            trans, start, end = np.ones((k, k), bool), np.ones(k, bool), np.ones(k, bool)
        else:
            trans, start, end = allowed_transitions(self.labels, constraints)
        self.allowed = trans
        # Penalties, not weights: 0 where allowed, FORBIDDEN where not.
        self.penalties = Penalties(*(np.where(a, 0.0, FORBIDDEN).astype("float32") for a in (trans, start, end)),
                                   self.pad_value)

    def build(self, input_shape=None):
        k = self.num_tags
        init = keras.initializers.RandomUniform(-0.1, 0.1)
        self.transitions = self.add_weight(shape=(k, k), initializer=init, name="transitions")
        self.start_transitions = self.add_weight(shape=(k,), initializer=init, name="start_transitions")
        self.end_transitions = self.add_weight(shape=(k,), initializer=init, name="end_transitions")
        self.built = True

    def call(self, emissions, mask=None):
        """Identity on the emissions [B, T, K]; use `decode`, `nll` etc."""
        return emissions

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        labels = list(self.labels) if self.labels is not None else None
        config.update(num_tags=self.num_tags, labels=labels, constraints=self.constraints, pad_value=self.pad_value)
        return config

    # ------------------------------------------------------------------ scores and inputs
    @property
    def weights_in_order(self):
        """(transitions, start_transitions, end_transitions): the variables, in the order recursions take them."""
        if not self.built:
            self.build()
        return self.transitions, self.start_transitions, self.end_transitions

    def scores(self):
        """(trans [K, K], start [K], end [K]) float32 for the likelihood: the weights plus the penalties."""
        # ops.add, not +: a NumPy penalty on the right of a torch tensor would be turned into NumPy.
        p = self.penalties
        return tuple(ops.add(ops.cast(w, "float32"), pen) for w, pen in zip(self.weights_in_order, (p.trans, p.start, p.end)))

    def decode_scores(self):
        """(trans, start, end) for decoding: forbidden transitions are -inf, never chosen."""
        p = self.penalties
        return tuple(ops.where(pen < 0, float("-inf"), s) for s, pen in zip(self.scores(), (p.trans, p.start, p.end)))

    def _checked(self, emissions, mask):
        """float32 emissions [B, T, K] and a bool mask [B, T] (all True when None), their shapes checked."""
        emissions = ops.cast(ops.convert_to_tensor(emissions), "float32")
        if len(emissions.shape) != 3:
            raise ValueError(f"CRF emissions must be [batch, time, num_tags], got shape {emissions.shape}")
        if emissions.shape[-1] is not None and emissions.shape[-1] != self.num_tags:
            raise ValueError(f"CRF emissions have {emissions.shape[-1]} tags, the layer has {self.num_tags}")
        if mask is None:
            return emissions, ops.ones(ops.shape(emissions)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")
        if len(mask.shape) != 2:
            raise ValueError(f"CRF mask must be [batch, time], got shape {mask.shape}")
        _check_right_padded(mask)
        return emissions, mask

    def _prepare(self, emissions, mask, tags=None):
        """Checked inputs with time padded to at least MIN_TIME (masked), so that every recursion has a
        step; callers crop per-token outputs back to T. Returns (emissions, mask) or (emissions, mask, tags)."""
        emissions, mask = self._checked(emissions, mask)
        out = (pad_time(emissions, 0.0), pad_time(mask, False))
        return out if tags is None else (*out, pad_time(ops.cast(tags, "int32"), 0))

    def _in_xla(self, phase: str) -> bool:
        """Whether `phase` ("train": nll, "decode": viterbi) runs as an XLA function here and now."""
        if self.xla not in (True, phase) or keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return not tf.executing_eagerly()

    # ------------------------------------------------------------------ the likelihood
    def path_score(self, emissions, tags, mask=None):
        """The score of the given tag paths. emissions [B, T, K], tags int [B, T] -> [B]."""
        emissions, mask, tags = self._prepare(emissions, mask, tags)
        return recursions.path_score(emissions, tags, mask, *self.scores())

    def log_partition(self, emissions, mask=None):
        """log Z by the forward algorithm. emissions [B, T, K] -> [B]."""
        return recursions.log_partition(*self._prepare(emissions, mask), *self.scores())

    def log_likelihood(self, emissions, tags, mask=None):
        """log p(tags | emissions). emissions [B, T, K], tags int [B, T], mask bool [B, T] -> [B].
        A row with no real tokens has log-likelihood 0."""
        emissions, mask, tags = self._prepare(emissions, mask, tags)
        return recursions.log_likelihood(emissions, tags, mask, *self.scores())

    def nll(self, emissions, tags, mask=None, reduction="mean"):
        """The training loss: the negative log-likelihood, averaged ("mean") or summed ("sum") over the
        batch's rows -> scalar. Under `xla` in a TensorFlow graph, value and gradient come from one
        XLA-compiled call (seqlab.crf.xla.nll)."""
        if reduction not in ("mean", "sum"):
            raise ValueError(f"CRF loss reduction must be mean or sum, got {reduction!r}")
        if self._in_xla("train"):
            from seqlab.crf import xla

            emissions, mask = self._checked(emissions, mask)
            return xla.nll(self.penalties, emissions, mask, ops.cast(tags, "int32"), self.weights_in_order, reduction)
        return recursions.reduce(-self.log_likelihood(emissions, tags, mask), reduction)

    def marginals(self, emissions, mask=None):
        """Posterior p(y_t = k | x) by forward-backward. [B, T, K] -> [B, T, K]; 0 at padding."""
        time = ops.shape(emissions)[1]
        return recursions.marginals(*self._prepare(emissions, mask), *self.scores())[:, :time]

    # ------------------------------------------------------------------ decoding
    def decode(self, emissions, mask=None):
        """Viterbi: the highest-scoring path. emissions [B, T, K] -> int32 [B, T], pad_value at padding."""
        return self.viterbi(emissions, mask)[0]

    def viterbi(self, emissions, mask=None):
        """Viterbi paths int32 [B, T] and their scores float32 [B]."""
        time = ops.shape(emissions)[1]
        if self._in_xla("decode"):
            from seqlab.crf import xla

            paths, best = xla.viterbi(self.penalties, *self._checked(emissions, mask), self.weights_in_order)
        else:
            paths, best = recursions.viterbi(*self._prepare(emissions, mask), *self.decode_scores(), self.pad_value)
        return paths[:, :time], best

    def nbest(self, emissions, k, mask=None):
        """The k best paths, best first: (int32 [B, k, T], float32 scores [B, k]).
        Where fewer than k legal paths exist, the extra entries score -inf."""
        time = ops.shape(emissions)[1]
        paths, scores = recursions.nbest(*self._prepare(emissions, mask), *self.decode_scores(), k, self.pad_value)
        return paths[:, :, :time], scores


def _is_symbolic(x) -> bool:
    """True while a compiler traces `x` (its values are not known yet) on the active Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    if backend == "torch":
        import torch

        return torch.compiler.is_compiling()
    return False


def _check_right_padded(mask) -> None:
    """Reject masks with a real token after padding (left padding, holes), where values are visible."""
    if _is_symbolic(mask):
        return  # traced (tf.function, jax.jit, torch.compile): values unknown; callers' masks come from `words > 0`
    gap = ops.logical_and(mask[:, 1:], ops.logical_not(mask[:, :-1]))
    if bool(ops.convert_to_numpy(ops.any(gap))):
        rows = np.nonzero(ops.convert_to_numpy(ops.any(gap, axis=1)))[0].tolist()
        raise ValueError(f"CRF mask rows {rows[:5]} have a real token after padding: pad on the right only "
                         f"(mask True for the first `length` positions)")
