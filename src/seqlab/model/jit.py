"""`trainer.jit_compile`: whether the training step and the decoder run under XLA.

    jit_compile = "auto" | true | false

TensorFlow runs a tagger as a plain graph (`tf.function`, traced once for every
batch shape) or compiled whole by XLA (`jit_compile=True`, compiled once per
padded shape). Inside the plain graph the CRF can run its own loops as XLA
functions (seqlab.crf.CRF `xla`): `true` compiles its loss (with the gradient)
and its Viterbi; `auto` on a CPU its loss only, and only behind the encoders of
CRF_LOSS_XLA_FASTER_ON_CPU; `false` nothing.

`auto` chooses what `scripts/bench_jit.py` and `scripts/bench_memory.py`
measured faster on CPU (docs/benchmarks.md, 2026-11-26): whole-step XLA lost
training for every encoder and head (0.25-0.64x, before 30-55 s of compiling),
so `auto` never compiles the whole step on a CPU; the CRF's compiled loss, 3x
faster than the plain graph's alone, trains a whole step at least 10% faster
only behind the cheaper encoders (CRF_LOSS_XLA_FASTER_ON_CPU: CNN 1.17x, BiGRU
1.11x; BiLSTM 0.90x and ID-CNN 1.00x, where it only costs compile time and
~130 MiB). The compiled Viterbi, 5x faster than pytorch-crf on its own, decodes a
tagger's test set no faster than the plain graph (0.85-1.17x, and 1.0x again on
2026-12-02) after ~4 s of compiling, so `auto` leaves decoding to the graph on a
CPU, except behind a transformer (DECODE_XLA_FASTER_ON_CPU): its compiled
decoder tagged 1.3-1.4x faster than the plain graph's once compiled, its first
pass 0-28% slower for 3-6 s of compiling (MiniLM-L6, 2,000 sentences in batches
of 256, `scripts/bench_jit.py --encoders transformer --decode-only`, 2026-12-02):
so `auto` compiles its dev scoring, which runs the same shapes every epoch and
pays from the second; one-off passes (a run's test and calibration passes, a
user's `tag` calls) stay in the graph. Wherever decoding runs under XLA, batches
of fewer than seqlab.model.backend.XLA_MIN_BATCH sentences (single requests,
latency figures) run in the plain graph: XLA would compile each new shape for
seconds (33 s of one-sentence shapes in a 110 s MiniLM run, 2026-12-03) to tag
them ~1.25x faster. Its
whole training step under XLA was 1.5x slower after ~150 s of compiling, so it
trains in the graph. On a GPU `auto` compiles everything (Keras' own choice there). JAX always compiles (jax.jit);
PyTorch runs eagerly (torch.compile is not used).

Under XLA every distinct input shape is compiled once, so jitted inputs are
padded up to a few bucket sizes (seqlab.crf.buckets.pad_to_bucket).
"""

from __future__ import annotations

import keras

from seqlab.config import jit_setting

PHASES = ("train", "dev", "decode")  # dev: dev scoring, every epoch on the same batches; decode: the rest

# scripts/bench_jit.py --heads crf, 2026-11-26 (after the plain graph's CRF loss stopped collecting every
# step's alphas, which made BiLSTM-CRF training 1.7x faster there): encoders behind which the CRF's
# XLA-compiled loss trained the steady epoch >= 10% faster than the plain graph's.
CRF_LOSS_XLA_FASTER_ON_CPU = frozenset({"cnn", "bigru"})
# scripts/bench_jit.py --decode-only, 2026-12-02 (docs/benchmarks.md, "The transformer tagger ..."): encoders
# whose whole decoder under XLA tagged >= 10% faster on a CPU than the plain graph once compiled. Their first
# pass was 14-28% slower (compiling every shape), so `auto` compiles only dev scoring, which runs the same
# batches every epoch; a run's test and calibration passes, and a user's `tag` calls, run in the graph.
DECODE_XLA_FASTER_ON_CPU = frozenset({"transformer"})


def _tf_has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def use_xla(setting, encoder: str, head: str, phase: str) -> bool:
    """Whether `phase` ("train", "dev" or "decode": PHASES) of an (encoder, head) tagger runs under XLA on
    this backend."""
    setting = jit_setting(setting)
    backend = keras.backend.backend()
    if backend == "jax":
        return True  # JAX has no uncompiled graph mode worth having
    if backend != "tensorflow":
        return False
    if setting != "auto":
        return setting
    if phase == "dev" and encoder in DECODE_XLA_FASTER_ON_CPU:
        return True
    return _tf_has_gpu()  # on a CPU the whole step under XLA never measured faster (above)


def xla_inside_graphs(setting, encoder: str | None = None) -> bool | str:
    """Which of a head's own loops run as XLA functions inside a graph that is not (the CRF's
    recursions; seqlab.crf.CRF `xla`): True (loss and decoding), "train" (the loss only) or False.
    On TensorFlow: true -> True; false -> False; auto -> True where TensorFlow sees a GPU; on a CPU
    "train" behind the encoders of CRF_LOSS_XLA_FASTER_ON_CPU, else False. A tagger's decoding never
    compiles the Viterbi on a CPU: it decodes as fast as the plain graph's there, after ~4 s of compiling
    per process and ~1 s per new batch shape (docs/benchmarks.md, 2026-12-02)."""
    setting = jit_setting(setting)
    if keras.backend.backend() != "tensorflow" or setting is False:
        return False
    if setting is True or _tf_has_gpu():
        return True
    return "train" if encoder in CRF_LOSS_XLA_FASTER_ON_CPU else False
