"""What differs between Keras backends when a tagger trains and decodes, in one place.

TensorFlow: training reads a `tf.data` pipeline and decoding runs a function
traced once with unknown batch, time and word-length dimensions
(`input_signature`), so batches of every shape reuse one graph.
JAX and PyTorch: Keras' own loops over the `PyDataset`; JAX compiles once per
input shape, so batches are padded up to a few bucket sizes (`pad_to_buckets`)
and reuse a handful of compiled functions. Padding is masked everywhere
(word id 0), so it never changes a result.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np


def is_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def input_signature() -> dict:
    """The tagger's inputs as TensorFlow specs with unknown batch, time and word-length dimensions."""
    import tensorflow as tf

    return {
        "words": tf.TensorSpec((None, None), tf.int32),  # [B, T]
        "chars": tf.TensorSpec((None, None, None), tf.int32),  # [B, T, W]
        "casing": tf.TensorSpec((None, None), tf.int32),  # [B, T]
    }


def predict_step(model, *args):
    """`model.decode_inputs` as Keras' predict step. TensorFlow and PyTorch call it with (data,);
    JAX with (state, data), the variables' values passed in, as its jit needs."""
    if keras.backend.backend() != "jax":
        (data,) = args
        return model.decode_inputs(data[0] if isinstance(data, (tuple, list)) else data)
    (trainable, non_trainable), data = args
    x = data[0] if isinstance(data, (tuple, list)) else data
    mapping = [*zip(model.trainable_variables, trainable), *zip(model.non_trainable_variables, non_trainable)]
    with keras.StatelessScope(state_mapping=mapping):
        ids = model.decode_inputs(x)
    return ids, non_trainable


BUCKET = 8  # time steps and characters are padded up to a multiple of this on JAX and PyTorch


def _round_up(n: int) -> int:
    return max(BUCKET, -(-n // BUCKET) * BUCKET)


def pad_to_buckets(x: dict, y=None):
    """Pad inputs {"words": [B, T], "chars": [B, T, W], "casing": [B, T]} (and tags [B, T]) with zeros
    so that T and W are multiples of BUCKET: few distinct shapes, so few compilations."""
    t, w = x["words"].shape[1], x["chars"].shape[2]
    dt, dw = _round_up(t) - t, _round_up(w) - w
    out = {"words": np.pad(x["words"], ((0, 0), (0, dt))), "chars": np.pad(x["chars"], ((0, 0), (0, dt), (0, dw))),
           "casing": np.pad(x["casing"], ((0, 0), (0, dt)))}
    return out if y is None else (out, np.pad(y, ((0, 0), (0, dt))))


def compiled_decoder(model, xla: bool = False):
    """inputs dict -> decoded tag ids (numpy int32 [B, T]), compiled once for (nearly) every batch shape.

    Keras' predict_on_batch retraces for each new (T, W) until it relaxes the
    shapes; on TensorFlow a fixed signature with unknown dimensions avoids that
    (one trace). XLA, and JAX, compile once per concrete shape, so there inputs
    are padded to bucket sizes and the output cropped back. `xla`: TensorFlow only.
    """
    if not is_tensorflow():
        def decode(x):
            time = x["words"].shape[1]
            return np.asarray(model.predict_on_batch(pad_to_buckets(x)))[:, :time]

        return decode
    import tensorflow as tf

    decode = tf.function(model.decode_inputs, input_signature=[input_signature()], jit_compile=xla)
    if not xla:
        return lambda x: decode(x).numpy()
    return lambda x: decode(pad_to_buckets(x)).numpy()[:, : x["words"].shape[1]]


def as_dataset(batches, xla: bool = False):
    """TensorFlow: a tf.data pipeline over a PyDataset of (inputs, tags [B, T]) with variable T and W
    (one trace, no retracing; under `xla` padded to bucket sizes); each pass is one epoch and starts by
    grouping that epoch's batches (`batches.start_epoch`), counting from `batches.epoch`. Other backends: the PyDataset, its batches padded to bucket sizes."""
    if not is_tensorflow() or xla:
        batches.pad = pad_to_buckets
    if not is_tensorflow():
        return batches
    import tensorflow as tf

    signature = (input_signature(), tf.TensorSpec((None, None), tf.int32))

    passes = itertools.count(batches.epoch)  # Keras starts one pass (a new iterator) per epoch

    def epoch():
        batches.start_epoch(next(passes))
        for i in range(len(batches)):
            yield batches[i]

    dataset = tf.data.Dataset.from_generator(epoch, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
