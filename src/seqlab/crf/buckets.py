"""Padding to bucket sizes: XLA and JAX compile once per input shape, so lengths are rounded up to a
multiple of BUCKET and a handful of shapes covers every batch. Padding is masked everywhere (word
id 0, mask False), so it never changes a result.

One helper for the CRF's compiled functions (TensorFlow tensors with an unknown time dimension) and
for the tagger's batches (NumPy arrays): `pad_to_bucket`.
"""

from __future__ import annotations

import numpy as np

BUCKET = 8


def bucket_length(n: int) -> int:
    """n rounded up to a multiple of BUCKET, and at least BUCKET."""
    return max(BUCKET, -(-int(n) // BUCKET) * BUCKET)


def pad_to_bucket(*arrays, axes: tuple[int, ...] = (1,), value=0):
    """Each array padded with `value` (zeros; False for bool) on `axes` up to `bucket_length` of that axis.

    NumPy arrays stay NumPy arrays; anything else is taken as a TensorFlow tensor, whose padding width
    is computed in the graph when the dimension is unknown. Returns a list, in order.
    """
    if all(isinstance(a, np.ndarray) for a in arrays):
        out = []
        for a in arrays:
            widths = [(0, 0)] * a.ndim
            for axis in axes:
                widths[axis] = (0, bucket_length(a.shape[axis]) - a.shape[axis])
            out.append(np.pad(a, widths, constant_values=value))
        return out
    import tensorflow as tf

    out = []
    for a in arrays:
        a = tf.convert_to_tensor(a)
        rows = [tf.constant([0, 0])] * len(a.shape)
        for axis in axes:
            n = tf.shape(a)[axis]
            rows[axis] = tf.stack([0, tf.maximum(BUCKET - n, (-n) % BUCKET)])
        out.append(tf.pad(a, tf.stack(rows), constant_values=value))
    return out
