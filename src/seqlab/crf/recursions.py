"""The linear-chain CRF's recursions, as pure functions of emissions, a mask and the transition scores.

Every function takes

    emissions  float32 [B, T, K]   (T >= MIN_TIME: see `pad_time`)
    mask       bool [B, T]          True for real tokens, padding on the right only
    trans      float32 [K, K]       trans[i, j]: the score of tag i followed by tag j
    start      float32 [K]          the score of starting in each tag
    end        float32 [K]          the score of ending in each tag

and holds no state: `seqlab.crf.CRF` adds its constraint penalties to its weights and calls
them, and `seqlab.crf.xla` compiles them with the weights passed in as arguments. For decoding,
forbidden transitions are -inf in `trans`/`start`/`end` (never chosen); for the likelihood they
are a large negative score (zero probability in float32). The score of a tag path y of length L is

    start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{L-1}]

The loops over time run inside the graph (`tf.while_loop` on TensorFlow, `keras.ops.scan` on
JAX); on PyTorch the forward algorithm and Viterbi are plain torch loops (torch_loops.py).
"""

from __future__ import annotations

import keras
from keras import ops

MIN_TIME = 2  # every recursion gets at least one step: an empty loop cannot be stacked in a graph, nor compiled


def _backend() -> str:
    return keras.backend.backend()


def scan(step, init, xs, reverse=False, collect=True):
    """Scan `step(carry, x) -> (carry, y)` over the leading (time) axis of `xs`.

    Returns (final carry, ys stacked on a new leading axis); `y` must have the structure, shapes and
    dtypes of `carry`. On TensorFlow this is a plain `tf.while_loop` (Keras' TF `scan` needs static
    shapes); elsewhere `ops.scan`. `collect=False` (TensorFlow): only the final carry is wanted; ys is
    None and the loop writes nothing per step (nor does its gradient keep those writes).
    """
    if _backend() != "tensorflow":
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


def pad_time(x, value):
    """x [B, T, ...] -> [B, max(T, MIN_TIME), ...], padded on the right with `value`.

    T is static on every backend but TensorFlow graphs traced with an unknown time dimension; there
    the padding width is computed in the graph (0 when T >= MIN_TIME), which XLA folds.
    """
    rank = len(x.shape)
    time = x.shape[1]
    if time is not None:
        if time >= MIN_TIME:
            return x
        return ops.pad(x, [(0, 0), (0, MIN_TIME - time)] + [(0, 0)] * (rank - 2), constant_values=value)
    import tensorflow as tf  # only TensorFlow traces with unknown dimensions

    extra = tf.maximum(MIN_TIME - tf.shape(x)[1], 0)
    widths = tf.stack([tf.constant([0, 0]), tf.stack([0, extra])] + [tf.constant([0, 0])] * (rank - 2))
    return tf.pad(x, widths, constant_values=value)


def _steps(emissions, mask):
    """The inputs of steps 1..T-1, time first: emissions [T-1, B, K], mask [T-1, B]."""
    return ops.moveaxis(emissions[:, 1:], 1, 0), ops.moveaxis(mask[:, 1:], 1, 0)


def lengths_of(mask):
    """int32 [B]: the real tokens of each row."""
    return ops.sum(ops.cast(mask, "int32"), axis=1)


# ------------------------------------------------------------------ the likelihood
def forward(emissions, mask, trans, start, collect=True):
    """Forward variables: (alpha at each row's last real token [B, K], every alpha [T, B, K] or None).

    alpha_t[k] = log of the summed scores of every path of tokens 0..t that ends in tag k.
    """
    if _backend() == "torch":
        from seqlab.crf import torch_loops

        return torch_loops.forward(emissions, mask, trans, start)
    # exp-space matrix product instead of a [B, K, K] logsumexp: the same result, far cheaper.
    exp_trans = ops.exp(trans - ops.max(trans, axis=0, keepdims=True))  # [K, K], columns max 1
    shift = ops.max(trans, axis=0)  # [K]
    alpha0 = start + emissions[:, 0]  # [B, K]

    def step(alpha, x):
        emit_t, mask_t = x  # [B, K], [B]
        top = ops.max(alpha, axis=1, keepdims=True)  # [B, 1]
        summed = ops.matmul(ops.exp(alpha - top), exp_trans)  # [B, K]
        nxt = ops.log(ops.maximum(summed, 1e-37)) + top + shift + emit_t
        alpha = ops.where(mask_t[:, None], nxt, alpha)  # padding keeps the last real alpha
        return alpha, alpha

    alpha, alphas = scan(step, alpha0, _steps(emissions, mask), collect=collect)
    return alpha, ops.concatenate([alpha0[None], alphas], axis=0) if collect else None


def backward(emissions, mask, trans, end):
    """Backward variables beta [T, B, K]: log of the summed scores after token t (end included) given
    y_t. At a row's last real token, and after it, beta is the end score."""
    exp_trans_t = ops.transpose(ops.exp(trans - ops.max(trans, axis=1, keepdims=True)))  # [K(to), K(from)]
    shift = ops.max(trans, axis=1)  # [K(from)]
    beta_last = ops.broadcast_to(end, (ops.shape(emissions)[0], ops.shape(trans)[0]))  # [B, K]

    def step(beta, x):
        emit_n, mask_n = x  # emissions and mask of token t + 1
        nxt = beta + emit_n  # [B, K(to)]
        top = ops.max(nxt, axis=1, keepdims=True)
        summed = ops.matmul(ops.exp(nxt - top), exp_trans_t)  # [B, K(from)]
        beta_t = ops.log(ops.maximum(summed, 1e-37)) + top + shift
        beta_t = ops.where(mask_n[:, None], beta_t, beta_last)
        return beta_t, beta_t

    _, betas = scan(step, beta_last, _steps(emissions, mask), reverse=True)  # [T-1, B, K]
    return ops.concatenate([betas, beta_last[None]], axis=0)


def log_partition(emissions, mask, trans, start, end):
    """log Z [B]: the log of the summed scores of every path; 0 for a row without tokens."""
    alpha, _ = forward(emissions, mask, trans, start, collect=False)
    log_z = ops.logsumexp(alpha + end, axis=1)
    return ops.where(ops.any(mask, axis=1), log_z, 0.0)


def path_score(emissions, tags, mask, trans, start, end):
    """The score [B] of the tag paths `tags` int [B, T]; 0 for a row without tokens."""
    num_tags = ops.shape(trans)[0]
    tags = ops.clip(ops.cast(tags, "int32"), 0, num_tags - 1)  # padded tags may hold anything: the mask drops them
    maskf = ops.cast(mask, "float32")  # [B, T]
    lengths = lengths_of(mask)  # [B]
    emit = ops.squeeze(ops.take_along_axis(emissions, tags[..., None], axis=2), -1)  # [B, T]
    score = ops.sum(emit * maskf, axis=1)  # [B]
    pair = tags[:, :-1] * num_tags + tags[:, 1:]  # [B, T-1]
    score = score + ops.sum(ops.take(ops.reshape(trans, (-1,)), pair) * maskf[:, 1:], axis=1)
    last = ops.squeeze(ops.take_along_axis(tags, ops.maximum(lengths - 1, 0)[:, None], axis=1), 1)  # [B]
    score = score + ops.take(start, tags[:, 0]) + ops.take(end, last)
    return ops.where(lengths > 0, score, 0.0)


def log_likelihood(emissions, tags, mask, trans, start, end):
    """log p(tags | emissions) [B]; 0 for a row without tokens."""
    return path_score(emissions, tags, mask, trans, start, end) - log_partition(emissions, mask, trans, start, end)


def reduce(per_row, reduction: str):
    """[B] -> scalar: "mean" or "sum" over the batch's rows."""
    return ops.sum(per_row) if reduction == "sum" else ops.mean(per_row)


def marginals(emissions, mask, trans, start, end):
    """Posterior p(y_t = k | x) [B, T, K] by forward-backward; 0 at padding."""
    _, alphas = forward(emissions, mask, trans, start)  # [T, B, K]
    betas = backward(emissions, mask, trans, end)  # [T, B, K]
    log_z = ops.logsumexp(alphas[0] + betas[0], axis=1)  # [B]
    post = ops.moveaxis(ops.exp(alphas + betas - log_z[None, :, None]), 0, 1)  # [B, T, K]
    return ops.where(mask[..., None], post, 0.0)


# ------------------------------------------------------------------ decoding
def viterbi(emissions, mask, trans, start, end, pad_value: int = -1):
    """The best paths int32 [B, T] (pad_value at padding) and their scores float32 [B] (0 without tokens).

    Forbidden transitions must be -inf in `trans`, `start` and `end`.
    """
    lengths = lengths_of(mask)
    if _backend() == "torch":
        from seqlab.crf import torch_loops

        paths, best = torch_loops.viterbi(emissions, mask, trans, start, end)
        return ops.where(mask, paths, pad_value), ops.where(lengths > 0, best, 0.0)
    k = ops.shape(trans)[0]
    identity = ops.arange(k, dtype="int32")  # [K]
    score0 = start + emissions[:, 0]  # [B, K]

    def step(carry, x):
        score, _ = carry
        emit_t, mask_t = x
        cand = score[:, :, None] + trans[None]  # [B, K(from), K(to)]
        top = ops.max(cand, axis=1)  # [B, K]
        # argmax over `from` as two plain reductions (max, then the first index reaching it):
        # XLA's CPU argmax is slow. Computed here, while `cand` is hot, not again after the loop.
        back = ops.min(ops.where(cand >= top[:, None, :], identity[None, :, None], k), axis=1)  # [B, K(to)]
        keep = mask_t[:, None]
        carry = (ops.where(keep, top + emit_t, score), ops.where(keep, back, identity[None, :]))  # padding keeps the tag
        return carry, carry

    (score, _), (_, backs) = scan(step, (score0, ops.zeros_like(score0, dtype="int32")), _steps(emissions, mask))
    final = score + end  # [B, K]
    last = ops.cast(ops.argmax(final, axis=1), "int32")  # [B]

    def back_step(tag, back_t):
        prev = ops.squeeze(ops.take_along_axis(back_t, tag[:, None], axis=1), 1)  # [B]
        return prev, prev

    _, prevs = scan(back_step, last, backs, reverse=True)  # [T-1, B]: prevs[t] = the tag at t
    paths = ops.moveaxis(ops.concatenate([prevs, last[None]], axis=0), 0, 1)  # [B, T]
    return ops.where(mask, paths, pad_value), ops.where(lengths > 0, ops.max(final, axis=1), 0.0)


def nbest(emissions, mask, trans, start, end, k: int, pad_value: int = -1):
    """The k best paths, best first: int32 [B, k, T] (pad_value at padding) and float32 scores [B, k].

    Where fewer than k legal paths exist, the extra entries score -inf. Forbidden transitions: -inf.
    """
    n = ops.shape(trans)[0]
    neg = float("-inf")
    batch = ops.shape(emissions)[0]
    rank0 = ops.concatenate([ops.zeros((1,), "float32"), ops.full((k - 1,), neg, "float32")], axis=0)  # [k]
    scores0 = (start + emissions[:, 0])[:, :, None] + rank0  # [B, K, k]: one path per tag at t = 0
    same_tag = ops.broadcast_to(ops.arange(n, dtype="int32")[None, :, None], (batch, n, k))
    same_rank = ops.broadcast_to(ops.arange(k, dtype="int32")[None, None, :], (batch, n, k))

    def step(carry, x):
        scores, _, _ = carry  # [B, K, k]
        emit_t, mask_t = x
        cand = scores[:, :, None, :] + trans[None, :, :, None]  # [B, K(from), K(to), k]
        cand = ops.reshape(ops.transpose(cand, (0, 2, 1, 3)), (batch, n, n * k))  # [B, K(to), K*k]
        top, idx = ops.top_k(cand, k)  # [B, K, k]
        idx = ops.cast(idx, "int32")
        keep = mask_t[:, None, None]
        scores = ops.where(keep, top + emit_t[:, :, None], scores)
        carry = (scores, ops.where(keep, idx // k, same_tag), ops.where(keep, idx % k, same_rank))
        return carry, carry

    (scores, _, _), (_, prev_tags, prev_ranks) = scan(step, (scores0, same_tag, same_rank), _steps(emissions, mask))
    best, idx = ops.top_k(ops.reshape(scores + end[None, :, None], (batch, n * k)), k)  # [B, k]
    idx = ops.cast(idx, "int32")
    last = (idx // k, idx % k)  # the tag and rank of each path at the last step

    def back_step(carry, x):
        tag, rank = carry  # [B, k]
        prev_tag_t, prev_rank_t = x  # [B, K, k]
        flat = tag * k + rank
        tag = ops.take_along_axis(ops.reshape(prev_tag_t, (batch, n * k)), flat, axis=1)
        rank = ops.take_along_axis(ops.reshape(prev_rank_t, (batch, n * k)), flat, axis=1)
        return (tag, rank), (tag, rank)

    _, (tags, _) = scan(back_step, last, (prev_tags, prev_ranks), reverse=True)  # [T-1, B, k]
    paths = ops.transpose(ops.concatenate([tags, last[0][None]], axis=0), (1, 2, 0))  # [B, k, T]
    paths = ops.where(mask[:, None, :], paths, pad_value)
    has_tokens = ops.any(mask, axis=1)[:, None]
    return paths, ops.where(has_tokens, best, ops.where(ops.arange(k)[None] == 0, 0.0, neg))
