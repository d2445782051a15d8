"""`trainer.jit_compile`: whether the training step and the decoder run under XLA.

    jit_compile = "auto" | true | false

TensorFlow runs a tagger either as a plain graph (`tf.function`) or compiled by
XLA (`jit_compile=True`). On a CPU neither wins everywhere: XLA fuses the
CRF's per-step work and the convolutions, while Keras' recurrent layers run
their loop no faster compiled. `auto` therefore picks, per encoder, head and
phase, what `scripts/bench_jit.py` measured faster on CPU (the table below,
docs/benchmarks.md), and XLA wherever TensorFlow sees a GPU (Keras' own choice
there). JAX always compiles (jax.jit); PyTorch runs eagerly (torch.compile is
not used).

Under XLA every distinct input shape is compiled once, so jitted inputs are
padded up to a few bucket sizes (seqlab.model.backend.pad_to_buckets).
"""

from __future__ import annotations

import keras

PHASES = ("train", "decode")

# scripts/bench_jit.py on the 2-core CPU machine, 2026-11-25 (docs/benchmarks.md, "XLA or plain graph"):
# True where XLA was faster in the steady state. Filled per (encoder, head, phase).
XLA_FASTER_ON_CPU: dict[tuple[str, str, str], bool] = {}


def _tf_has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def parse_setting(value) -> str | bool:
    """The config value (auto, true, false, or their strings) -> "auto", True or False; ValueError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "true", "false"):
        return {"true": True, "false": False}.get(text, "auto")
    raise ValueError(f"expected auto, true or false, got {value!r}")


def use_xla(setting, encoder: str, head: str, phase: str) -> bool:
    """Whether `phase` ("train" or "decode") of an (encoder, head) tagger runs under XLA on this backend."""
    setting = parse_setting(setting)
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
    return keras.backend.backend() == "tensorflow" and parse_setting(setting) is not False
