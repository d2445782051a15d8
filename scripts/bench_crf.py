"""Time seqlab's CRF against pytorch-crf 0.7.2 and the softmax head, side by side in one run.

    pip install -e '.[bench]'                    # torch 2.13.0 (CPU) and pytorch-crf 0.7.2
    python scripts/bench_crf.py                  # TensorFlow: graph and XLA, the softmax head, a tagger step
    python scripts/bench_crf.py --backend all    # the CRF on TensorFlow, JAX and PyTorch, one table

`--backend all` times each backend in its own child process (Keras fixes the
backend at import), one after the other, and pytorch-crf in this process.

Shapes: B=32, T=40, lengths uniform in [5, 40], K=9 and K=21. Each number is
the median of `--repeats` timed calls after warm-up, in milliseconds. The
columns: `CRF(K)` with its default arguments in a plain `tf.function`, as docs/crf.md teaches it
(on TensorFlow its loss and Viterbi are XLA-compiled functions by default); a plain graph traced for the
shape with `xla=False`; the whole function compiled by
XLA; a plain graph traced once for unknown B and T whose CRF loss and Viterbi
are XLA-compiled functions (seqlab.crf.CRF(xla=True)); and "as the pipeline
runs it", the CRF as a tagger trains and decodes with the default
trainer.jit_compile=auto on this machine behind the default BiLSTM
(seqlab.model.jit.xla_inside_graphs: on a CPU the Viterbi compiled, the loss in
the plain graph, because that trains a whole BiLSTM-CRF step as fast; behind CNN
and BiGRU encoders the loss is compiled too; scripts/bench_jit.py). The last
table compares a whole BiLSTM tagger's training step with each head.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqlab.crf import CRF  # noqa: E402
from seqlab.model import build_tagger  # noqa: E402
from seqlab.model.heads import argmax_decode, softmax_loss  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def make_inputs(batch: int, time_steps: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, time_steps + 1, size=batch)
    lengths[0] = time_steps  # the batch is as long as its longest sentence
    mask = np.arange(time_steps)[None, :] < lengths[:, None]
    emissions = rng.normal(size=(batch, time_steps, k)).astype("float32")
    tags = rng.integers(0, k, size=(batch, time_steps)).astype("int32")
    return emissions, tags, mask


def seqlab_timings(emissions, tags, mask, repeats: int, jit: bool, crf_xla=None) -> dict[str, float]:
    """jit: the whole function compiled by XLA. crf_xla (True, "decode" or False): as a tagger runs it,
    a plain graph traced once for unknown B and T in which the CRF compiles what `crf_xla` says.
    crf_xla="default": `CRF(K)` with its default arguments in a plain `tf.function`, as docs/crf.md uses it.
    None: `CRF(K, xla=False)`, plain graph loops."""
    import tensorflow as tf

    k = emissions.shape[-1]
    pipeline = crf_xla not in (None, "default")
    crf = CRF(k) if crf_xla == "default" else CRF(k, xla=crf_xla or False)
    crf.build()
    em, tg, mk = tf.constant(emissions), tf.constant(tags), tf.constant(mask)
    signature = [tf.TensorSpec((None, None, k)), tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.bool)]

    @tf.function(jit_compile=jit, input_signature=signature if pipeline else None)
    def nll_and_grad(e, t, m):
        with tf.GradientTape() as tape:
            tape.watch(e)
            loss = crf.nll(e, t, m)
        return loss, tape.gradient(loss, [e, *crf.trainable_weights])

    @tf.function(jit_compile=jit, input_signature=[signature[0], signature[2]] if pipeline else None)
    def decode(e, m):
        return crf.decode(e, m)

    @tf.function(jit_compile=jit)
    def softmax_and_grad(e, t, m):
        with tf.GradientTape() as tape:
            tape.watch(e)
            loss = softmax_loss(e, t, m)
        return loss, tape.gradient(loss, e)

    @tf.function(jit_compile=jit)
    def argmax(e, m):
        return argmax_decode(e, m)

    return {
        "nll_grad": median_ms(lambda: [x.numpy() if hasattr(x, "numpy") else [g.numpy() for g in x] for x in nll_and_grad(em, tg, mk)], repeats),
        "decode": median_ms(lambda: decode(em, mk).numpy(), repeats),
        "softmax_grad": median_ms(lambda: softmax_and_grad(em, tg, mk)[1].numpy(), repeats),
        "argmax": median_ms(lambda: argmax(em, mk).numpy(), repeats),
    }


def torch_timings(emissions, tags, mask, repeats: int) -> dict[str, float] | None:
    try:
        import torch
        from torchcrf import CRF as TorchCRF
    except ImportError:
        return None
    k = emissions.shape[-1]
    crf = TorchCRF(k, batch_first=True)
    em = torch.tensor(emissions, requires_grad=True)
    tg, mk = torch.tensor(tags, dtype=torch.long), torch.tensor(mask)

    def nll_grad():
        crf.zero_grad()
        em.grad = None
        loss = -crf(em, tg, mk, reduction="mean")
        loss.backward()

    def decode():
        with torch.no_grad():
            crf.decode(em, mk)

    return {"nll_grad": median_ms(nll_grad, repeats), "decode": median_ms(decode, repeats)}


def backend_timings(emissions, tags, mask, repeats: int) -> dict[str, dict[str, float]]:
    """This process's Keras backend: {mode: {"nll_grad": ms, "decode": ms}} for each way it can run the CRF."""
    from seqlab.testing import compiled_modes, grad_function, in_mode

    k = emissions.shape[-1]
    crf = CRF(k)
    crf.build()
    out = {}
    for mode in compiled_modes():
        if mode == "graph":
            continue  # on TensorFlow, seqlab_timings reports it
        nll_grad = grad_function(lambda e: -keras.ops.mean(crf.log_likelihood(e, tags, mask)), crf, mode)
        decode = in_mode(lambda e, t, m: crf.decode(e, m), mode, k)
        out[mode] = {"nll_grad": median_ms(lambda: nll_grad(emissions), repeats),
                     "decode": median_ms(lambda: keras.ops.convert_to_numpy(decode(emissions, tags, mask)), repeats)}
    return out


def all_backends(args) -> None:
    """One table: the CRF on each backend (its own child process) against pytorch-crf (here)."""
    rows = {}
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run([sys.executable, __file__, "--backend-json", "--repeats", str(args.repeats),
                               "--batch", str(args.batch), "--time", str(args.time)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{backend}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        rows[backend] = json.loads(proc.stdout.strip().splitlines()[-1])
    print("| K | op | backend | mode | seqlab (ms) | pytorch-crf (ms) | pytorch-crf / seqlab |")
    print("|---|---|---|---|---|---|---|")
    for k in (9, 21):
        ref = torch_timings(*make_inputs(args.batch, args.time, k), args.repeats)
        for op, name in (("nll_grad", "NLL forward + backward"), ("decode", "Viterbi decode")):
            for backend, by_k in rows.items():
                for mode, ms in by_k[str(k)].items():
                    ref_ms = f"{ref[op]:.2f}" if ref else "n/a"
                    ratio = f"{ref[op] / ms[op]:.1f}x" if ref else "n/a"
                    print(f"| {k} | {name} | {backend} | {mode} | {ms[op]:.2f} | {ref_ms} | {ratio} |")


def tagger_step_ms(head: str, batch: int, time_steps: int, k: int, repeats: int) -> float:
    """One training step of a BiLSTM tagger (word embedding 100 + char CNN, 100 units per direction)."""
    from seqlab.data.vocab import PAD, UNK, Vocabulary
    from seqlab.task import TaggingTask

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    labels = ["O"] + [f"{p}-T{i}" for i in range((k - 1) // 2) for p in "BI"]
    vocab = Vocabulary([PAD, UNK, *(f"w{i}" for i in range(4998))], [PAD, UNK, *(chr(33 + i) for i in range(88))], labels)
    model = build_tagger(TaggingTask("ner", vocab, "iob2"),
                         {"dim": 100, "dropout": 0.5, "chars": "cnn", "char_dim": 30, "char_filters": 30, "char_kernel": 3},
                         {"name": "bilstm", "layers": 1, "units": 100, "dropout": 0.5, "recurrent_dropout": 0.0},
                         {"name": head, "constrained": head == "crf"})
    model.compile(optimizer="adam")
    rng = np.random.default_rng(1)
    _, tags, mask = make_inputs(batch, time_steps, k)
    words = np.where(mask, rng.integers(2, 5000, size=mask.shape), 0).astype("int32")
    chars = np.where(mask[..., None], rng.integers(1, 90, size=(*mask.shape, 10)), 0).astype("int32")
    x = {"words": words, "chars": chars, "casing": np.zeros_like(words)}
    return median_ms(lambda: model.train_on_batch(x, tags), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time", type=int, default=40)
    parser.add_argument("--backend", choices=["tensorflow", "all"], default="tensorflow",
                        help="all: the CRF on TensorFlow, JAX and PyTorch against pytorch-crf, in one table")
    parser.add_argument("--backend-json", action="store_true", help=argparse.SUPPRESS)  # a child of --backend all
    parser.add_argument("--smoke", action="store_true", help="K=9 only, 3 calls each, no tagger steps: does it still run?")
    args = parser.parse_args()
    sizes = (9,) if args.smoke else (9, 21)
    if args.smoke:
        args.repeats = 3
    if args.backend_json:
        timings = {k: backend_timings(*make_inputs(args.batch, args.time, k), args.repeats) for k in (9, 21)}
        print(json.dumps(timings))
        return
    from seqlab.runtime.quiet import import_tensorflow

    tf = import_tensorflow()
    if args.backend == "all":
        import jax
        import torch

        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; keras {keras.__version__}, "
              f"tensorflow {tf.__version__}, jax {jax.__version__}, torch {torch.__version__} "
              f"({torch.get_num_threads()} threads); B={args.batch}, T={args.time}, median of {args.repeats} calls\n")
        all_backends(args)
        return

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"tensorflow {tf.__version__}, keras {keras.__version__}")
    try:
        import torch

        print(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        print("torch not installed: pip install -e '.[bench]' for the pytorch-crf columns")
    print()
    from seqlab.model.jit import xla_inside_graphs

    auto = xla_inside_graphs("auto", "bilstm")  # the default encoder: the "as the pipeline runs it" column
    compiled = {True: "its loss and Viterbi", "train": "its loss only", False: "nothing (all in the plain graph)"}
    print(f"trainer.jit_compile=auto compiles, of the CRF, behind a BiLSTM: {compiled[auto]}; "
          f"behind a CNN: {compiled[xla_inside_graphs('auto', 'cnn')]} here (the 'graph + XLA CRF' column compiles both)\n")
    print("| K | op | `CRF(K)` defaults in a tf.function (ms) | plain graph, xla=False (ms) | seqlab XLA (ms) "
          "| graph + XLA CRF (ms) | seqlab as the pipeline runs it (ms) | pytorch-crf (ms) | defaults vs pytorch-crf "
          "| pipeline vs pytorch-crf | graph + XLA CRF vs pytorch-crf | best seqlab vs pytorch-crf |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sizes:
        emissions, tags, mask = make_inputs(args.batch, args.time, k)
        default = seqlab_timings(emissions, tags, mask, args.repeats, jit=False, crf_xla="default")
        graph = seqlab_timings(emissions, tags, mask, args.repeats, jit=False)
        xla = seqlab_timings(emissions, tags, mask, args.repeats, jit=True)
        inner = seqlab_timings(emissions, tags, mask, args.repeats, jit=False, crf_xla=True)
        pipe = inner if auto is True else seqlab_timings(emissions, tags, mask, args.repeats, jit=False, crf_xla=auto)
        ref = torch_timings(emissions, tags, mask, args.repeats)
        ratio = lambda ms: f"{ref[op] / ms:.1f}x" if ref else "n/a"  # noqa: E731
        for op, name in (("nll_grad", "NLL forward + backward"), ("decode", "Viterbi decode")):
            best = min(default[op], graph[op], xla[op], inner[op], pipe[op])
            ref_ms = f"{ref[op]:.2f}" if ref else "n/a"
            print(f"| {k} | {name} | {default[op]:.2f} | {graph[op]:.2f} | {xla[op]:.2f} | {inner[op]:.2f} | {pipe[op]:.2f} "
                  f"| {ref_ms} | {ratio(default[op])} | {ratio(pipe[op])} | {ratio(inner[op])} | {ratio(best)} |")
        print(f"| {k} | softmax CE forward + backward (reference) | | {graph['softmax_grad']:.2f} | {xla['softmax_grad']:.2f} | | | | | | | |")
        print(f"| {k} | softmax argmax decode (reference) | | {graph['argmax']:.2f} | {xla['argmax']:.2f} | | | | | | | |")
    if args.smoke:
        return
    print()
    print("| K | BiLSTM tagger train step, softmax head (ms) | same, CRF head (ms) | CRF / softmax |")
    print("|---|---|---|---|")
    for k in sizes:
        soft = tagger_step_ms("softmax", args.batch, args.time, k, args.repeats)
        crf = tagger_step_ms("crf", args.batch, args.time, k, args.repeats)
        print(f"| {k} | {soft:.2f} | {crf:.2f} | {crf / soft:.3f} |")


if __name__ == "__main__":
    main()
