"""The TensorFlow-only parts of running a tagger, in one place.

On TensorFlow, training and decoding go through functions traced once with
unknown batch, time and word-length dimensions (`input_signature`), so batches
of every shape reuse one graph. Other Keras backends use Keras' own loops.
"""

from __future__ import annotations

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


def compiled_decoder(model):
    """inputs dict -> decoded tag ids (numpy int32 [B, T]), traced once for every batch shape.

    Keras' predict_on_batch retraces for each new (T, W) until it relaxes the
    shapes; a fixed signature with unknown dimensions avoids that on TensorFlow.
    """
    if not is_tensorflow():
        return lambda x: np.asarray(model.predict_on_batch(x))
    import tensorflow as tf

    decode = tf.function(lambda x: model.predict_step(x), input_signature=[input_signature()])
    return lambda x: decode(x).numpy()


def as_dataset(batches):
    """TensorFlow: a tf.data pipeline over a PyDataset of (inputs, tags [B, T]) with variable T and W
    (one trace, no retracing); each pass is one epoch and regroups the batches after it.
    Other backends: the PyDataset itself."""
    if not is_tensorflow():
        return batches
    import tensorflow as tf

    signature = (input_signature(), tf.TensorSpec((None, None), tf.int32))

    def epoch():
        for i in range(len(batches)):
            yield batches[i]
        batches.on_epoch_end()

    dataset = tf.data.Dataset.from_generator(epoch, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
