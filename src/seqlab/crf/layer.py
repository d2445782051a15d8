"""A linear-chain conditional random field for Keras 3.

Lafferty et al. (2001); the layout follows Lample et al. (2016): emission
scores from an encoder plus learned tag-to-tag transition scores, with scores
for starting and ending in each tag. The score of a tag path y for a sentence
of length L is

    start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]

`log_likelihood` is that score minus log Z (forward algorithm), `decode` is
exact Viterbi, `marginals` is forward-backward and `nbest` is k-best Viterbi.

Masks are bool [B, T], True for real tokens, padding on the right only.
All math runs in float32, whatever the dtype of the emissions. The recursion
over time runs inside the graph (`tf.while_loop` on TensorFlow, `keras.ops.scan`
on JAX; plain torch loops for the forward algorithm and Viterbi on PyTorch, see
torch_loops.py), with no Python loop over the batch, and compiles under XLA.
Forbidden transitions (`constraints="iob1"`, `"iob2"` or `"bioes"` with `labels`) get a
score of -10000, which underflows to exactly zero probability in float32.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from seqlab.crf.constraints import allowed_transitions

FORBIDDEN = -1.0e4  # added to forbidden transitions: exp(FORBIDDEN) == 0 in float32


def _scan(step, init, xs, reverse=False, collect=True):
    """Scan `step(carry, x) -> (carry, y)` over the leading (time) axis of `xs`.

    Returns (final carry, ys stacked on a new leading axis); `y` must have the
    structure, shapes and dtypes of `carry`. On TensorFlow this is a plain
    `tf.while_loop` (Keras' TF `scan` needs static shapes); elsewhere `ops.scan`.
    `collect=False` (TensorFlow): only the final carry is wanted; ys is None and
    the loop writes nothing per step (nor does its gradient keep those writes).
    """
    if keras.backend.backend() != "tensorflow":
        carry, ys = ops.scan(step, init, xs, reverse=reverse)
        return carry, ys if collect else None
    import tensorflow as tf

    xs_flat = [tf.convert_to_tensor(x) for x in tf.nest.flatten(xs)]
    n = tf.shape(xs_flat[0])[0]
    xs_ta = [tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x) for x in xs_flat]
    carry_flat = [tf.convert_to_tensor(c) for c in tf.nest.flatten(init)]
    ys_ta = [tf.TensorArray(c.dtype, size=n, element_shape=c.shape) for c in carry_flat] if collect else []

    def body(i, carry, ys):
        t = n - 1 - i if reverse else i
        x = tf.nest.pack_sequence_as(xs, [ta.read(t) for ta in xs_ta])
        carry, y = step(tf.nest.pack_sequence_as(init, carry), x)
        ys = [ta.write(t, v) for ta, v in zip(ys, tf.nest.flatten(y))]
        return i + 1, tf.nest.flatten(carry), ys

    _, carry_flat, ys_ta = tf.while_loop(
        lambda i, *_: i < n, body, (tf.constant(0), carry_flat, ys_ta), maximum_iterations=n  # XLA gradients need it
    )
    ys = tf.nest.pack_sequence_as(init, [ta.stack() for ta in ys_ta]) if collect else None
    return tf.nest.pack_sequence_as(init, carry_flat), ys


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


MIN_TIME = 2  # every recursion gets at least one step (see CRF._prepare)


def _pad_time(x, value):
    """x [B, T, ...] -> [B, max(T, MIN_TIME), ...], padded on the right with `value`.

    T is static on every backend but TensorFlow graphs traced with an unknown
    time dimension; there the padding width is computed in the graph (0 when
    T >= MIN_TIME), which XLA folds once it knows the shape.
    """
    rank = len(x.shape)
    time = x.shape[1]
    if time is not None:
        if time >= MIN_TIME:
            return x
        widths = [(0, 0), (0, MIN_TIME - time)] + [(0, 0)] * (rank - 2)
        return ops.pad(x, widths, constant_values=value)
    import tensorflow as tf  # only TensorFlow traces with unknown dimensions

    extra = tf.maximum(MIN_TIME - tf.shape(x)[1], 0)
    widths = tf.stack([tf.constant([0, 0]), tf.stack([0, extra])] + [tf.constant([0, 0])] * (rank - 2))
    return tf.pad(x, widths, constant_values=value)


XLA_BUCKET = 8  # under `xla`, time is padded up to a multiple of this: one XLA compilation per padded shape


def _pad_to_bucket(*tensors):
    """Tensors [B, T, ...] (float padded with 0.0, int with 0, bool with False) -> [B, T', ...], T' the next
    multiple of XLA_BUCKET (and at least XLA_BUCKET). TensorFlow tensors; one padding width for all."""
    import tensorflow as tf

    time = tf.shape(tensors[0])[1]
    extra = tf.maximum(XLA_BUCKET - time, (-time) % XLA_BUCKET)
    row = tf.stack([0, extra])
    return [tf.pad(x, tf.stack([[0, 0], row] + [[0, 0]] * (len(x.shape) - 2))) for x in tensors]


@keras.saving.register_keras_serializable(package="seqlab")
class CRF(keras.layers.Layer):
    """Linear-chain CRF over `num_tags` tags.

    Args:
        num_tags: K, the number of tags.
        labels: optional tag names (length K); needed for `constraints`.
        constraints: None, "iob1", "iob2" or "bioes": forbid the transitions that
            scheme does not allow (e.g. O -> I-PER, start -> I-PER).
        pad_value: the tag id written at padded positions by `decode`/`nbest`.
        xla: TensorFlow only: True runs `nll` (value and gradient) and `viterbi` as functions compiled
            by XLA whenever they are traced into a graph (`tf.function`, Keras' fit and predict), so
            their loops over time run fused even inside a model that is not compiled by XLA;
            "decode" compiles `viterbi` only. Time is padded to a multiple of XLA_BUCKET (masked:
            results are unchanged). Eager calls, and the other backends, ignore it. Not saved: the
            tagger sets it (seqlab.model.jit.xla_inside_graphs).

    Weights: `transitions` [K, K] (from, to), `start_transitions` [K],
    `end_transitions` [K].

    Example:
        crf = CRF(3, labels=["O", "B-PER", "I-PER"], constraints="iob2")
        nll = -crf.log_likelihood(emissions, tags, mask)   # [B]
        paths = crf.decode(emissions, mask)                # int32 [B, T]
    """

    def __init__(self, num_tags, labels=None, constraints=None, pad_value=-1, xla=False, **kwargs):
        kwargs.setdefault("dtype", "float32")  # stay float32 under mixed precision
        super().__init__(**kwargs)
        self.xla = "decode" if xla == "decode" else bool(xla)
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
        # Penalties, not weights: 0 where allowed, FORBIDDEN where not.
        self.allowed = trans
        self._trans_penalty = np.where(trans, 0.0, FORBIDDEN).astype("float32")
        self._start_penalty = np.where(start, 0.0, FORBIDDEN).astype("float32")
        self._end_penalty = np.where(end, 0.0, FORBIDDEN).astype("float32")

    def build(self, input_shape=None):
        k = self.num_tags
        init = keras.initializers.RandomUniform(-0.1, 0.1)
        self.transitions = self.add_weight(shape=(k, k), initializer=init, name="transitions")
        self.start_transitions = self.add_weight(shape=(k,), initializer=init, name="start_transitions")
        self.end_transitions = self.add_weight(shape=(k,), initializer=init, name="end_transitions")
        self.built = True

    def call(self, emissions, mask=None):
        """Identity on the emissions [B, T, K]; use `decode`, `log_likelihood` etc."""
        return emissions

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        labels = list(self.labels) if self.labels is not None else None
        config.update(num_tags=self.num_tags, labels=labels, constraints=self.constraints, pad_value=self.pad_value)
        return config

    # ------------------------------------------------------------------ helpers
    def _scores(self):
        """Effective (transitions [K, K], start [K], end [K]) in float32, penalties included."""
        if not self.built:
            self.build()
        # ops.add, not +: a NumPy penalty on the right of a torch tensor would be turned into NumPy.
        trans = ops.add(ops.cast(self.transitions, "float32"), self._trans_penalty)
        start = ops.add(ops.cast(self.start_transitions, "float32"), self._start_penalty)
        end = ops.add(ops.cast(self.end_transitions, "float32"), self._end_penalty)
        return trans, start, end

    def _prepare(self, emissions, mask):
        """float32 emissions [B, T', K] and bool mask [B, T'], checked.

        T' = max(T, 2): a batch whose longest row has 0 or 1 tokens gets masked
        padding columns, so that every recursion has at least one step (an empty
        loop cannot be stacked in graph mode, nor compiled by XLA). Callers crop
        their per-token outputs back to T.
        """
        emissions, mask = self._checked(emissions, mask)
        return _pad_time(emissions, 0.0), _pad_time(mask, False)

    def _checked(self, emissions, mask):
        """float32 emissions [B, T, K] and a bool mask [B, T] (all True when None), their shapes checked."""
        emissions = ops.cast(ops.convert_to_tensor(emissions), "float32")
        if len(emissions.shape) != 3:
            raise ValueError(f"CRF emissions must be [batch, time, num_tags], got shape {emissions.shape}")
        if emissions.shape[-1] is not None and emissions.shape[-1] != self.num_tags:
            raise ValueError(f"CRF emissions have {emissions.shape[-1]} tags, the layer has {self.num_tags}")
        if mask is None:
            mask = ops.ones(ops.shape(emissions)[:2], dtype="bool")
        else:
            mask = ops.cast(mask, "bool")
            if len(mask.shape) != 2:
                raise ValueError(f"CRF mask must be [batch, time], got shape {mask.shape}")
            self._check_right_padded(mask)
        return emissions, mask

    def _in_xla(self, phase: str) -> bool:
        """Whether `phase` ("train": nll, "decode": viterbi) runs as an XLA function here and now."""
        if self.xla is False or (self.xla == "decode" and phase != "decode") or keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return not tf.executing_eagerly()

    def _weights(self):
        """The three weights as tensors, in a fixed order: transitions, start, end."""
        import tensorflow as tf

        return [tf.convert_to_tensor(getattr(w, "value", w)) for w in (self.transitions, self.start_transitions,
                                                                        self.end_transitions)]

    def _xla_decode(self, emissions, mask):
        """`_viterbi` compiled by XLA, time padded to a multiple of XLA_BUCKET (callers crop)."""
        fn = _shared_function(self, "viterbi", lambda view, e, m: view._viterbi(e, m))
        return fn(*_pad_to_bucket(emissions, mask), *self._weights())

    def _xla_nll(self, emissions, mask, tags, reduction):
        """`nll` with its value and gradient from one XLA-compiled call (see `nll`)."""
        import tensorflow as tf

        emissions, mask, tags = _pad_to_bucket(emissions, mask, tags)

        def value_and_grads(view, emissions, mask, tags):
            weights = [view.transitions, view.start_transitions, view.end_transitions]
            with tf.GradientTape() as tape:  # inside the compiled function: XLA differentiates the loops
                tape.watch([emissions, *weights])
                loss = view._reduce(-view._log_likelihood(emissions, mask, tags), reduction)
            return loss, tape.gradient(loss, [emissions, *weights])

        fused = _shared_function(self, f"nll_{reduction}", value_and_grads)
        index_of = {id(getattr(w, "value", w)): i for i, w in
                    enumerate((self.transitions, self.start_transitions, self.end_transitions))}

        @tf.custom_gradient
        def nll(emissions):
            loss, grads = fused(emissions, mask, tags, *self._weights())

            def grad(dy, variables=None):
                return dy * grads[0], [dy * grads[1 + index_of[id(v)]] for v in variables or []]

            return loss, grad

        return nll(emissions)

    def _backward(self, emissions, mask, trans, end):
        """Backward variables beta [T, B, K]: log-sum of the scores after t (end included) given y_t.
        At a row's last real token (and after it) beta is the end score."""
        exp_trans_t = ops.transpose(ops.exp(trans - ops.max(trans, axis=1, keepdims=True)))  # [K(to), K(from)]
        trans_shift = ops.max(trans, axis=1)  # [K(from)]
        beta_last = ops.broadcast_to(end, (ops.shape(emissions)[0], self.num_tags))  # [B, K]
        xs = (ops.moveaxis(emissions[:, 1:], 1, 0), ops.moveaxis(mask[:, 1:], 1, 0))

        def step(beta, x):
            emit_n, mask_n = x  # emissions and mask of t + 1
            nxt = beta + emit_n  # [B, K(to)]
            top = ops.max(nxt, axis=1, keepdims=True)
            summed = ops.matmul(ops.exp(nxt - top), exp_trans_t)  # [B, K(from)]
            beta_t = ops.log(ops.maximum(summed, 1e-37)) + top + trans_shift
            beta_t = ops.where(mask_n[:, None], beta_t, beta_last)
            return beta_t, beta_t

        _, betas = _scan(step, beta_last, xs, reverse=True)  # [T-1, B, K]
        return ops.concatenate([betas, beta_last[None]], axis=0)

    @staticmethod
    def _reduce(per_row, reduction):
        return ops.sum(per_row) if reduction == "sum" else ops.mean(per_row)

    @staticmethod
    def _check_right_padded(mask):
        """Reject masks with a real token after padding (left padding, holes), where values are visible."""
        if _is_symbolic(mask):
            return  # traced (tf.function, jax.jit, torch.compile): values unknown; callers' masks come from `words > 0`
        gap = ops.logical_and(mask[:, 1:], ops.logical_not(mask[:, :-1]))
        if bool(ops.convert_to_numpy(ops.any(gap))):
            rows = np.nonzero(ops.convert_to_numpy(ops.any(gap, axis=1)))[0].tolist()
            raise ValueError(
                f"CRF mask rows {rows[:5]} have a real token after padding: pad on the right only "
                f"(mask True for the first `length` positions)"
            )

    # ------------------------------------------------------------------ scores
    def path_score(self, emissions, tags, mask=None):
        """Score of the given tag paths. emissions [B, T, K], tags int [B, T] -> [B]."""
        emissions, mask = self._prepare(emissions, mask)
        return self._path_score(emissions, _pad_time(ops.cast(tags, "int32"), 0), mask)

    def _path_score(self, emissions, tags, mask):
        trans, start, end = self._scores()
        tags = ops.cast(tags, "int32")
        maskf = ops.cast(mask, "float32")  # [B, T]
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)  # [B]
        # Padded tags may hold anything: clip them into range, the mask removes them.
        tags = ops.clip(tags, 0, self.num_tags - 1)
        emit = ops.squeeze(ops.take_along_axis(emissions, tags[..., None], axis=2), -1)  # [B, T]
        score = ops.sum(emit * maskf, axis=1)  # [B]
        pair = tags[:, :-1] * self.num_tags + tags[:, 1:]  # [B, T-1]
        step = ops.take(ops.reshape(trans, (-1,)), pair)  # [B, T-1]
        score = score + ops.sum(step * maskf[:, 1:], axis=1)
        first = tags[:, 0]
        last = ops.squeeze(ops.take_along_axis(tags, ops.maximum(lengths - 1, 0)[:, None], axis=1), 1)  # [B]
        score = score + ops.take(start, first) + ops.take(end, last)
        return ops.where(lengths > 0, score, 0.0)

    def log_partition(self, emissions, mask=None):
        """log Z by the forward algorithm. emissions [B, T, K] -> [B]."""
        return self._log_partition(*self._prepare(emissions, mask))

    def _log_partition(self, emissions, mask):
        alpha, _ = self._forward(emissions, mask, collect=False)
        _, _, end = self._scores()
        log_z = ops.logsumexp(alpha + end, axis=1)
        return ops.where(ops.any(mask, axis=1), log_z, 0.0)

    def log_likelihood(self, emissions, tags, mask=None):
        """log p(tags | emissions). emissions [B, T, K], tags int [B, T], mask bool [B, T] -> [B].

        A row with no real tokens has log-likelihood 0.
        """
        emissions, mask = self._prepare(emissions, mask)
        tags = _pad_time(ops.cast(tags, "int32"), 0)
        return self._log_likelihood(emissions, mask, tags)

    def nll(self, emissions, tags, mask=None, reduction="mean"):
        """The training loss: negative log-likelihood, averaged ("mean") or summed ("sum") over the
        batch's rows -> scalar. emissions [B, T, K], tags int [B, T], mask bool [B, T].

        Under `xla` in a TensorFlow graph, the value and its gradient (w.r.t. the emissions and
        the weights) come from one XLA-compiled call, and backpropagation scales that gradient:
        a tape cannot reach into an XLA function whose loops keep intermediate values
        (TensorFlow refuses TensorLists at the XLA boundary), and this way nothing is computed twice.
        """
        if reduction not in ("mean", "sum"):
            raise ValueError(f"CRF loss reduction must be mean or sum, got {reduction!r}")
        if self._in_xla("train"):  # padded to a bucket size, which is at least MIN_TIME
            return self._xla_nll(*self._checked(emissions, mask), ops.cast(tags, "int32"), reduction)
        emissions, mask = self._prepare(emissions, mask)
        tags = _pad_time(ops.cast(tags, "int32"), 0)
        return self._reduce(-self._log_likelihood(emissions, mask, tags), reduction)

    def _log_likelihood(self, emissions, mask, tags):
        return self._path_score(emissions, tags, mask) - self._log_partition(emissions, mask)

    def _forward(self, emissions, mask, collect=True):
        """Forward variables. Returns (alpha at each row's last token [B, K], all alphas [T, B, K]);
        all alphas are None with `collect=False` (the loss needs only the last)."""
        trans, start, _ = self._scores()
        if keras.backend.backend() == "torch":
            from seqlab.crf import torch_loops

            return torch_loops.forward(emissions, mask, trans, start)
        # exp-space matrix product instead of a [B, K, K] logsumexp: same result, far cheaper.
        exp_trans = ops.exp(trans - ops.max(trans, axis=0, keepdims=True))  # [K, K], columns max 1
        trans_shift = ops.max(trans, axis=0)  # [K]
        alpha0 = start + emissions[:, 0]  # [B, K]
        xs = (ops.moveaxis(emissions[:, 1:], 1, 0), ops.moveaxis(mask[:, 1:], 1, 0))  # [T-1, B, K], [T-1, B]

        def step(alpha, x):
            emit_t, mask_t = x  # [B, K], [B]
            top = ops.max(alpha, axis=1, keepdims=True)  # [B, 1]
            summed = ops.matmul(ops.exp(alpha - top), exp_trans)  # [B, K]
            nxt = ops.log(ops.maximum(summed, 1e-37)) + top + trans_shift + emit_t
            alpha = ops.where(mask_t[:, None], nxt, alpha)
            return alpha, alpha

        alpha, alphas = _scan(step, alpha0, xs, collect=collect)
        return alpha, ops.concatenate([alpha0[None], alphas], axis=0) if collect else None

    def marginals(self, emissions, mask=None):
        """Posterior p(y_t = k | x) by forward-backward. [B, T, K] -> [B, T, K]; 0 at padding."""
        time = ops.shape(emissions)[1]
        emissions, mask = self._prepare(emissions, mask)
        trans, _, end = self._scores()
        _, alphas = self._forward(emissions, mask)  # [T, B, K]
        betas = self._backward(emissions, mask, trans, end)  # [T, B, K]
        log_z = ops.logsumexp(alphas[0] + betas[0], axis=1)  # [B]
        post = ops.exp(alphas + betas - log_z[None, :, None])  # [T, B, K]
        post = ops.moveaxis(post, 0, 1)
        return ops.where(mask[..., None], post, 0.0)[:, :time]

    # ------------------------------------------------------------------ decoding
    def _decode_scores(self):
        """Transition scores for decoding: forbidden transitions are -inf, never chosen."""
        trans, start, end = self._scores()
        neg = float("-inf")
        return (
            ops.where(self._trans_penalty < 0, neg, trans),
            ops.where(self._start_penalty < 0, neg, start),
            ops.where(self._end_penalty < 0, neg, end),
        )

    def decode(self, emissions, mask=None):
        """Viterbi: the highest-scoring path. emissions [B, T, K] -> int32 [B, T], pad_value at padding."""
        paths, _ = self.viterbi(emissions, mask)
        return paths

    def viterbi(self, emissions, mask=None):
        """Viterbi paths int32 [B, T] and their scores float32 [B]."""
        time = ops.shape(emissions)[1]
        if self._in_xla("decode"):  # padded to a bucket size, which is at least MIN_TIME
            paths, best = self._xla_decode(*self._checked(emissions, mask))
        else:
            paths, best = self._viterbi(*self._prepare(emissions, mask))
        return paths[:, :time], best

    def _viterbi(self, emissions, mask):
        """Viterbi on prepared inputs: paths int32 [B, T] (pad_value at padding), scores [B]."""
        trans, start, end = self._decode_scores()
        if keras.backend.backend() == "torch":
            from seqlab.crf import torch_loops

            paths, best = torch_loops.viterbi(emissions, mask, trans, start, end)
            lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
            return ops.where(mask, paths, self.pad_value), ops.where(lengths > 0, best, 0.0)
        k = self.num_tags
        identity = ops.arange(k, dtype="int32")  # [K]
        score0 = start + emissions[:, 0]  # [B, K]
        xs = (ops.moveaxis(emissions[:, 1:], 1, 0), ops.moveaxis(mask[:, 1:], 1, 0))

        def step(carry, x):
            score, _ = carry
            emit_t, mask_t = x
            cand = score[:, :, None] + trans[None]  # [B, K(from), K(to)]
            top = ops.max(cand, axis=1)  # [B, K]
            # argmax over `from` as two plain reductions (max, then the first index reaching it):
            # XLA's CPU argmax is slow. Computed here, while `cand` is hot, not again after the loop.
            hits = cand >= top[:, None, :]
            back = ops.min(ops.where(hits, identity[None, :, None], k), axis=1)  # [B, K(to)]
            keep = mask_t[:, None]
            carry = (ops.where(keep, top + emit_t, score), ops.where(keep, back, identity[None, :]))  # padding keeps the tag
            return carry, carry

        (score, _), (_, backs) = _scan(step, (score0, ops.zeros_like(score0, dtype="int32")), xs)  # backs [T-1, B, K]
        final = score + end  # [B, K]
        last = ops.cast(ops.argmax(final, axis=1), "int32")  # [B]
        best = ops.max(final, axis=1)

        def back_step(tag, back_t):
            prev = ops.squeeze(ops.take_along_axis(back_t, tag[:, None], axis=1), 1)  # [B]
            return prev, prev

        _, prevs = _scan(back_step, last, backs, reverse=True)  # [T-1, B], prevs[t] = tag at t
        paths = ops.concatenate([prevs, last[None]], axis=0)  # [T, B]
        paths = ops.moveaxis(paths, 0, 1)
        paths = ops.where(mask, paths, self.pad_value)
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        return paths, ops.where(lengths > 0, best, 0.0)

    def nbest(self, emissions, k, mask=None):
        """The k best paths, best first: (int32 [B, k, T], float32 scores [B, k]).

        Where fewer than k legal paths exist, the extra entries score -inf.
        """
        time = ops.shape(emissions)[1]
        emissions, mask = self._prepare(emissions, mask)
        trans, start, end = self._decode_scores()
        n = self.num_tags
        neg = float("-inf")
        batch = ops.shape(emissions)[0]
        rank0 = ops.concatenate(
            [ops.zeros((1,), "float32"), ops.full((k - 1,), neg, "float32")], axis=0
        )  # [k]: one path per tag at t = 0
        scores0 = (start + emissions[:, 0])[:, :, None] + rank0  # [B, K, k]
        same_tag = ops.broadcast_to(ops.arange(n, dtype="int32")[None, :, None], (batch, n, k))
        same_rank = ops.broadcast_to(ops.arange(k, dtype="int32")[None, None, :], (batch, n, k))
        xs = (ops.moveaxis(emissions[:, 1:], 1, 0), ops.moveaxis(mask[:, 1:], 1, 0))

        def step(carry, x):
            scores, _, _ = carry  # [B, K, k]
            emit_t, mask_t = x
            cand = scores[:, :, None, :] + trans[None, :, :, None]  # [B, K(from), K(to), k]
            cand = ops.reshape(ops.transpose(cand, (0, 2, 1, 3)), (batch, n, n * k))  # [B, K(to), K*k]
            top, idx = ops.top_k(cand, k)  # [B, K, k]
            idx = ops.cast(idx, "int32")
            keep = mask_t[:, None, None]
            scores = ops.where(keep, top + emit_t[:, :, None], scores)
            prev_tag = ops.where(keep, idx // k, same_tag)
            prev_rank = ops.where(keep, idx % k, same_rank)
            return (scores, prev_tag, prev_rank), (scores, prev_tag, prev_rank)

        init = (scores0, same_tag, same_rank)
        (scores, _, _), (_, prev_tags, prev_ranks) = _scan(step, init, xs)  # [T-1, B, K, k]
        final = ops.reshape(scores + end[None, :, None], (batch, n * k))
        best, idx = ops.top_k(final, k)  # [B, k]
        idx = ops.cast(idx, "int32")
        last = (idx // k, idx % k)  # tag and rank of each path at the last step

        def back_step(carry, x):
            tag, rank = carry  # [B, k]
            prev_tag_t, prev_rank_t = x  # [B, K, k]
            flat = tag * k + rank
            tag = ops.take_along_axis(ops.reshape(prev_tag_t, (batch, n * k)), flat, axis=1)
            rank = ops.take_along_axis(ops.reshape(prev_rank_t, (batch, n * k)), flat, axis=1)
            return (tag, rank), (tag, rank)

        _, (tags, _) = _scan(back_step, last, (prev_tags, prev_ranks), reverse=True)  # [T-1, B, k]
        paths = ops.concatenate([tags, last[0][None]], axis=0)  # [T, B, k]
        paths = ops.transpose(paths, (1, 2, 0))  # [B, k, T]
        paths = ops.where(mask[:, None, :], paths, self.pad_value)
        has_tokens = ops.any(mask, axis=1)[:, None]
        return paths[:, :, :time], ops.where(has_tokens, best, ops.where(ops.arange(k)[None] == 0, 0.0, neg))


class _WeightsView:
    """A CRF's scoring and decoding methods over weight tensors passed in, not its variables.

    The XLA functions of `CRF(xla=True)` take the weights as arguments and are shared by every
    CRF of the same size, constraints and padding id (`_shared_function`): XLA keeps each
    compiled function for the life of the process, so functions owned by each layer would
    pile up over the trials of a search or the jobs of a multirun (about 1,000 memory maps
    and 80 MB per model, measured, until LLVM fails with "Cannot allocate memory").
    """

    built = True
    _scores, _decode_scores, _path_score = CRF._scores, CRF._decode_scores, CRF._path_score
    _forward, _log_partition, _log_likelihood, _viterbi = CRF._forward, CRF._log_partition, CRF._log_likelihood, CRF._viterbi
    _reduce = staticmethod(CRF._reduce)

    def __init__(self, layer, transitions, start, end):
        """`layer`: a CRF, or another view (only its size, padding id and penalties are read)."""
        self.num_tags, self.pad_value = layer.num_tags, layer.pad_value
        self._trans_penalty, self._start_penalty, self._end_penalty = (
            layer._trans_penalty, layer._start_penalty, layer._end_penalty)
        self.transitions, self.start_transitions, self.end_transitions = transitions, start, end


_SHARED: dict = {}


def _shared_function(layer: CRF, name: str, body):
    """`body(view, *inputs)` as one XLA-compiled tf.function per (name, size, constraints, padding id),
    called as fn(*inputs, transitions, start, end)."""
    import tensorflow as tf

    key = (name, layer.num_tags, layer._trans_penalty.tobytes(), layer._start_penalty.tobytes(),
           layer._end_penalty.tobytes(), layer.pad_value)
    if key not in _SHARED:
        shape = _WeightsView(layer, None, None, None)  # the layer's size and penalties, not the layer itself

        def fn(*args):
            *inputs, transitions, start, end = args
            return body(_WeightsView(shape, transitions, start, end), *inputs)

        _SHARED[key] = tf.function(fn, jit_compile=True, reduce_retracing=True)
    return _SHARED[key]
