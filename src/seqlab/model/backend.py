"""What differs between Keras backends when a tagger trains and decodes, in one place.

TensorFlow: training reads a `tf.data` pipeline and decoding runs a function
traced once with unknown batch, time and word-length dimensions
(`input_signature`), so batches of every shape reuse one graph.
JAX and PyTorch: Keras' own loops over the `PyDataset`; JAX compiles once per
input shape, so batches are padded up to a few bucket sizes (`pad_inputs`)
and reuse a handful of compiled functions. Padding is masked everywhere
(word id 0), so it never changes a result.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np

from seqlab.crf.buckets import pad_to_bucket


def is_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


RANKS = {"words": 2, "casing": 2, "chars": 3, "subwords": 3, "piece_word": 3}  # [B, T], [B, T, W], [B, NW, W']


def input_signature(names=("words", "chars", "casing")) -> dict:
    """The tagger's inputs (`names`: the task's input_names) as TensorFlow specs with unknown dimensions."""
    import tensorflow as tf

    return {name: tf.TensorSpec((None,) * RANKS[name], tf.int32) for name in names}


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


def pad_inputs(x: dict, y=None):
    """Inputs {"words": [B, T], "chars": [B, T, W], "casing": [B, T]} (and tags [B, T]) padded with zeros so
    that T and W are bucket sizes (seqlab.crf.buckets): few distinct shapes, so few compilations."""
    words, casing = pad_to_bucket(x["words"], x["casing"])
    (chars,) = pad_to_bucket(x["chars"], axes=(1, 2))
    out = {"words": words, "chars": chars, "casing": casing}
    if "subwords" in x:  # only the subtoken axis: NW is almost always 1, and the backbone's cost grows with it
        (out["subwords"],) = pad_to_bucket(x["subwords"], axes=(2,))
        (out["piece_word"],) = pad_to_bucket(x["piece_word"], axes=(2,), value=-1)
    return out if y is None else (out, pad_to_bucket(y)[0])


# Under XLA, batches of fewer sentences run in the plain graph: XLA compiles every new (batch, padded length)
# shape, 3-6 s for a MiniLM tagger, which pays back only over many sentences. A run's latency figures (one
# sentence at a time) compiled a MiniLM tagger once per length bucket, 33 s of a 110 s run, and a service
# would stall seconds on each new request size (docs/benchmarks.md, 2026-12-03).
XLA_MIN_BATCH = 64


def compiled_decoder(model, xla: bool = False):
    """inputs dict -> decoded tag ids (numpy int32 [B, T]), compiled once for (nearly) every batch shape.

    Keras' predict_on_batch retraces for each new (T, W) until it relaxes the
    shapes; on TensorFlow a fixed signature with unknown dimensions avoids that
    (one trace: `compiled_function`). XLA, and JAX, compile once per concrete
    shape, so there inputs are padded to bucket sizes and the output cropped
    back. `xla`: TensorFlow only, for batches of at least XLA_MIN_BATCH sentences.
    """
    if not is_tensorflow():
        def decode(x):
            time = x["words"].shape[1]
            return np.asarray(model.predict_on_batch(pad_inputs(x)))[:, :time]

        return decode
    decode = compiled_function(model, model.decode_inputs, xla)
    return lambda x: decode(x)[:, : x["words"].shape[1]]


def compiled_function(model, method, xla: bool = False, tags: bool = False):
    """inputs dict -> method(inputs) (a tensor, or a tuple of them) as numpy; with `tags` (TensorFlow only:
    the other backends score dev with Keras' evaluate), (inputs, tags int32 [B, T]) -> method(inputs, tags).

    TensorFlow: traced once with unknown batch, time and word-length dimensions; under `xla`, batches of at
    least XLA_MIN_BATCH sentences (read at each call) run compiled by XLA instead, their inputs padded to
    bucket sizes (each function is traced on its first call only). Other backends run `method` as it is, on
    inputs padded to bucket sizes. The outputs keep the padded time axis: callers crop each row to its sentence.
    """
    if not is_tensorflow():
        return lambda x: keras.tree.map_structure(keras.ops.convert_to_numpy, method(pad_inputs(x)))
    graph = _traced(model, method, False, tags)
    if not xla:
        return graph
    compiled = _traced(model, method, True, tags)

    def run(x, *y):
        return (compiled if len(x["words"]) >= XLA_MIN_BATCH else graph)(x, *y)

    run.graph, run.compiled = graph.function, compiled.function  # their tracing counts, for tests
    return run


def _traced(model, method, xla: bool, tags: bool):
    """`method` as one tf.function of unknown dimensions (`xla`: compiled by XLA, on inputs padded to buckets)."""
    import tensorflow as tf

    signature = [input_signature(model.task.input_names)] + ([tf.TensorSpec((None, None), tf.int32)] if tags else [])
    # autograph=False: the tagger's functions are written with keras.ops loops (they also run under jax.jit),
    # so AutoGraph's source rewriting, about a tenth of a tiny run, buys nothing.
    fn = tf.function(method, input_signature=signature, jit_compile=xla, autograph=False)
    # TensorFlow counts traces per function code, across models: each job of a multirun traces its model's
    # function once and may call it once (the calibration pass), which it would report as "frequent retracing".
    fn._omit_frequent_tracing_warning = True
    pad = pad_inputs if xla else (lambda x, y=None: x if y is None else (x, y))
    if tags:
        run = lambda x, y: tf.nest.map_structure(lambda t: t.numpy(), fn(*pad(x, y)))  # noqa: E731
    else:
        run = lambda x: tf.nest.map_structure(lambda t: t.numpy(), fn(pad(x)))  # noqa: E731
    run.function = fn
    return run


class PaddedBatches(keras.utils.PyDataset):
    """A view of a PyDataset of (inputs, tags) whose batches are padded to bucket sizes (`pad_inputs`)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        return pad_inputs(*self.batches[i])

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()


def as_dataset(batches, xla: bool = False):
    """What Keras' fit, evaluate and predict read from a PyDataset of (inputs, tags [B, T]) with variable T
    and W (seqlab.training.batches.BucketedBatches).

    TensorFlow: a tf.data pipeline (one trace, no retracing; under `xla` padded to bucket sizes); each
    pass is one epoch and starts by grouping that epoch's batches (`batches.start_epoch`), counting from
    `batches.epoch`. Other backends: the batches padded to bucket sizes (JAX compiles once per shape).
    """
    if not is_tensorflow():
        return PaddedBatches(batches)
    import tensorflow as tf

    signature = (input_signature(batches.input_names), tf.TensorSpec((None, None), tf.int32))
    passes = itertools.count(batches.epoch)  # Keras starts one pass (a new iterator) per epoch
    pad = pad_inputs if xla else (lambda x, y: (x, y))

    def epoch():
        batches.start_epoch(next(passes))
        for i in range(len(batches)):
            yield pad(*batches[i])

    dataset = tf.data.Dataset.from_generator(epoch, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
