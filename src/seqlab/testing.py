"""Helpers for tests and scripts: tiny configs, free ports, servers that answer.

Importable (unlike conftest.py), so scripts and tests share them:

    from seqlab.testing import REPO, tiny_overrides, free_port, wait_http
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from seqlab.compose import compose  # noqa: F401  (tests compose the real config)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"  # public corpora beside the clone; tests skip without them


def conll2003_overrides() -> list[str]:
    """Overrides that read the shared CoNLL-2003 beside the clone, or none (the embedded default data)
    where it is absent: for benchmarks that prefer the larger corpus."""
    present = (SHARED_DATA / "conll2003" / "train.txt").exists()
    return ["data=conll2003", f"data.root={SHARED_DATA}"] if present else []


def free_port() -> int:
    """A loopback port with nothing listening on it (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120, proc=None) -> None:
    """Wait until `url` answers; if the server process `proc` exits first, fail with its stderr."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the server behind {url} exited: {(proc.stderr.read() if proc.stderr else '')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
            time.sleep(0.5)


def postgres_missing() -> str | None:
    """Why scripts/tracking_server.sh cannot start PostgreSQL here, or None when it can."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, which must start PostgreSQL as the postgres user"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed: pip install -e '.[server]'"
    return None


@contextlib.contextmanager
def tracking_server() -> Iterator[tuple[str, Path]]:
    """PostgreSQL + `mlflow server --serve-artifacts`, started by scripts/tracking_server.sh as a user starts
    them, in a fresh folder on free loopback ports; yields (tracking URI, the server's folder)."""
    # PostgreSQL runs as `postgres` when we are root: its folder must be reachable by that user
    folder = Path(tempfile.mkdtemp(prefix="seqlab-server-"))
    folder.chmod(0o755)
    env = {**os.environ, "PORT": str(free_port()), "PG_PORT": str(free_port()), "WORKERS": "2"}
    script = str(REPO / "scripts" / "tracking_server.sh")
    started = subprocess.run([script, "start", str(folder)], env=env, capture_output=True, text=True, timeout=180)
    try:
        if started.returncode != 0:
            logs = "".join(p.read_text()[-1500:] for p in folder.rglob("*.log"))
            raise RuntimeError(f"tracking_server.sh start failed: {started.stderr[-1500:]}\n{logs}")
        yield f"http://127.0.0.1:{env['PORT']}", folder
    finally:
        subprocess.run([script, "stop", str(folder)], env=env, capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """A run that takes seconds: few sentences, small layers, one epoch, a private MLflow store.

    Without XLA (`trainer.jit_compile=false`, 3-4 s less per process for compiling the CRF) unless `extra`
    sets trainer.jit_compile: the tests of the default path (the MLflow contract, the pyfunc, the tracking
    server) pass `trainer.jit_compile=auto`, and the CRF's XLA functions have their own tests.
    """
    jit = [] if any(e.startswith("trainer.jit_compile=") for e in extra) else ["trainer.jit_compile=false"]
    return [
        "data.limit=80",
        "trainer.epochs=1",
        "words.dim=16",
        "words.char_filters=8",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_location={tmp_path}/mlruns",
        *jit,
        *extra,
    ]


# ---------------------------------------------------------------- the same CRF checks on every Keras backend
def compiled_modes() -> list[str]:
    """How the active backend can run a function: eager, and its compilers."""
    import keras

    return {"tensorflow": ["eager", "graph", "xla"], "jax": ["eager", "jit"], "torch": ["eager"]}[keras.backend.backend()]


def in_mode(fn, mode: str, k: int):
    """fn(emissions [B, T, K], tags [B, T], mask [B, T]) run eagerly, or compiled as `mode` says.

    graph / xla: tf.function with unknown batch and time dimensions (as the tagger's decoder traces it);
    jit: jax.jit.
    """
    if mode == "eager":
        return fn
    if mode == "jit":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    signature = [tf.TensorSpec((None, None, k), tf.float32), tf.TensorSpec((None, None), tf.int32),
                 tf.TensorSpec((None, None), tf.bool)]
    return tf.function(fn, input_signature=signature, jit_compile=mode == "xla")


def grad_function(loss_fn, layer, mode: str = "eager"):
    """x -> (loss_fn(x), [d/dx, d/d each of `layer`'s trainable weights]) as numpy, on the active backend,
    built (and compiled: tf.function(jit_compile=True) or jax.jit, unless mode is "eager") once."""
    import keras
    import numpy as np

    backend = keras.backend.backend()
    weights = layer.trainable_weights
    to_numpy = lambda loss, grads: (float(keras.ops.convert_to_numpy(loss)),  # noqa: E731
                                    [np.asarray(keras.ops.convert_to_numpy(g)) for g in grads])
    if backend == "tensorflow":
        import tensorflow as tf

        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_fn(x)
            return loss, tape.gradient(loss, [x, *weights])

        compiled = tf.function(run, jit_compile=True) if mode != "eager" else run
        return lambda x: to_numpy(*compiled(tf.constant(x)))
    if backend == "jax":
        import jax

        def pure(x, values):
            with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                return loss_fn(x)

        run = jax.value_and_grad(pure, argnums=(0, 1))
        compiled = jax.jit(run) if mode != "eager" else run

        def call(x):
            loss, (gx, gw) = compiled(x, [w.value for w in weights])
            return to_numpy(loss, [gx, *gw])

        return call
    import torch

    def call(x):
        xt = torch.tensor(x, requires_grad=True)
        for w in weights:
            w.value.grad = None
        loss = loss_fn(xt)
        loss.backward()
        return to_numpy(loss.detach(), [xt.grad, *(w.value.grad for w in weights)])

    return call


def loss_and_grads(loss_fn, x, layer, mode: str = "eager"):
    """loss_fn(x) -> scalar: its value and its gradients with respect to x and `layer`'s trainable weights."""
    return grad_function(loss_fn, layer, mode)(x)
