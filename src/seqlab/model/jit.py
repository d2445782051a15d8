"""`trainer.jit_compile`: whether the training step and the decoder run under XLA.

    jit_compile = "auto" | true | false

TensorFlow runs a tagger as a plain graph (`tf.function`, traced once for every
batch shape) or compiled whole by XLA (`jit_compile=True`, compiled once per
padded shape). Unless trainer.jit_compile=false, the CRF's loss (with its
gradient) and Viterbi run as XLA functions inside the plain graph (seqlab.crf.CRF
`xla`): that is where XLA pays most (3-5x on the CRF's loops). Whether the
whole step is compiled too is `auto`'s choice per encoder, head and phase: what
`scripts/bench_jit.py` measured at least 10% faster on CPU (the table below,
docs/benchmarks.md), and XLA wherever TensorFlow sees a GPU (Keras' own choice
there). JAX always compiles (jax.jit); PyTorch runs eagerly (torch.compile is
not used).

Under XLA every distinct input shape is compiled once, so jitted inputs are
padded up to a few bucket sizes (seqlab.model.backend.pad_to_buckets).
"""

from __future__ import annotations

import keras

from seqlab.config import jit_setting

PHASES = ("train", "decode")

# scripts/bench_jit.py on the 2-core CPU machine, 2026-11-25 (docs/benchmarks.md, "XLA or a plain graph"):
# (encoder, head, phase) -> True where compiling the whole step was >= 10% faster than the plain graph
# (with the CRF's XLA loops). It never was: whole-step XLA lost training for every encoder and head
# (0.25-0.64x, before counting 30-55 s of compilation), and decoding was within 7% either way.
XLA_FASTER_ON_CPU: dict[tuple[str, str, str], bool] = {}


def _tf_has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def use_xla(setting, encoder: str, head: str, phase: str) -> bool:
    """Whether `phase` ("train" or "decode") of an (encoder, head) tagger runs under XLA on this backend."""
    setting = jit_setting(setting)
    backend = keras.backend.backend()
    if backend == "jax":
        return True  # JAX has no uncompiled graph mode worth having
    if backend != "tensorflow":
        return False
    if setting != "auto":
        return setting
    if _tf_has_gpu():
        return True
    return XLA_FASTER_ON_CPU.get((encoder, head, phase), False)


def xla_inside_graphs(setting) -> bool:
    """Whether a head compiles its own loops with XLA inside a graph that is not (the CRF's recursions):
    on TensorFlow unless trainer.jit_compile=false."""
    return keras.backend.backend() == "tensorflow" and jit_setting(setting) is not False
