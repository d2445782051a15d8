"""Helpers for tests and scripts, each written once: tiny configs, column files, the command-line entry
points run as users run them, the runs of a store, free ports, servers that answer, and the CRF checks
that every Keras backend shares.

Importable (unlike conftest.py), so scripts and tests share them:

    from seqlab.testing import REPO, tiny_overrides, write_conll, run_module, runs_of
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from seqlab.config import compose  # noqa: F401  (tests compose the real config)
from seqlab.tracking.store import sqlite_path

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"  # public corpora beside the clone; tests skip without them


def write_conll(path: Path, sentences, sep: str = " ") -> str:
    """Write `sentences` as a column file at `path` (token, tag per line; a blank line ends a sentence) and
    return its path. Each sentence is a list of (token, tag) pairs, or a Sentence."""
    lines = []
    for sentence in sentences:
        pairs = zip(sentence.tokens, sentence.tags) if hasattr(sentence, "tokens") else sentence
        lines += [f"{token}{sep}{tag}" for token, tag in pairs] + [""]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def run_module(module: str, *args: str, timeout: float = 300, fresh: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """`python -m <module> ARGS` as a user runs it (experiments.run, experiments.compare, experiments.cleanup, ...),
    from the repository root unless `cwd` says otherwise (the repository stays importable); output captured as
    text; killed after `timeout` seconds (subprocess.TimeoutExpired), as subprocess.run does.

    The process is a child of this worker's fork server (seqlab.testing.warm: TensorFlow, MLflow and Hydra
    already imported, 8-12 s less per command) unless `fresh` asks for a new interpreter (a test of start-up
    itself) or the environment differs in what is read at start-up."""
    return _finish(start_module(module, *args, fresh=fresh, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs), timeout)


def run_script(script: str | Path, *args: str, timeout: float = 300, fresh: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` (scripts/...), as `run_module` runs a module."""
    return _finish(_start([str(script), *args], fresh, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs), timeout)


def start_module(module: str, *args: str, fresh: bool = False, cwd=REPO, env: dict | None = None, stdout=None,
                 stderr=None):
    """`python -m <module> ARGS` started and left running: a `subprocess.Popen` in text mode, or the fork
    server's child with the same interface (run_module). SIGINT raises KeyboardInterrupt in it, as in a
    `python` started from a terminal (a shell starts background jobs with SIGINT ignored; not this one)."""
    return _start(["-m", module, *args], fresh, cwd=cwd, env=env, stdout=stdout, stderr=stderr)


def ctrl_c_as_from_a_terminal() -> None:
    """For a child's preexec_fn: SIGINT's default disposition, so that the interpreter turns it into
    KeyboardInterrupt (a pytest-xdist worker ignores SIGINT, and its children would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv: list[str], fresh: bool, cwd=REPO, env: dict | None = None, stdout=None, stderr=None):
    """`python ARGV` (`-m MODULE ...` or `SCRIPT ...`): forked from this worker's server, or a fresh Popen."""
    from seqlab.testing import warm

    env = warm.importable(env or os.environ, REPO)
    server = None if fresh else warm.server(REPO)
    if server is not None and server.serves(env):
        return warm.Process(server.path, warm.target(argv), cwd, env, stdout, stderr)
    return subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True,
                            preexec_fn=ctrl_c_as_from_a_terminal)


def _finish(proc, timeout: float | None) -> subprocess.CompletedProcess:
    """Wait for `proc` and collect its output as subprocess.run does (killed after `timeout` seconds)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise subprocess.TimeoutExpired(proc.args, timeout, output=stdout, stderr=stderr) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`python -m experiments.run ARGS`."""
    return run_module("experiments.run", *args, timeout=timeout, **kwargs)


def one_error_line(proc) -> str:
    """The one `error: ...` line a refused command printed; fails if there is none, several, or a traceback."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    return lines[0]


def runs_of(uri: str, experiment: str = "seqlab") -> list:
    """Every run of `experiment` in the store at `uri` (none when the store or the experiment does not exist)."""
    from seqlab import tracking

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return []
    client = tracking.client(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=5000)


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
    (folder / "pg_port").write_text(env["PG_PORT"])  # for tests that connect to PostgreSQL itself
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


def migrated_store(path: Path) -> Path:
    """`path` (an MLflow SQLite file) as a copy of an empty store created and migrated once per MLflow version
    and machine (seqlab.tracking.store.copy_empty_store): the tests of run behaviour need not pay MLflow's
    schema migrations, 5-10 s a store, each time (tests/test_robustness.py creates new stores itself)."""
    from seqlab.tracking.store import copy_empty_store

    return copy_empty_store(Path(path))


def migrated_uri(path: Path) -> str:
    """The SQLite tracking URI of `migrated_store(path)`: a new store without paying its migrations."""
    return f"sqlite:///{migrated_store(Path(path))}"


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """A run that takes seconds: few sentences, small layers, one epoch, a private MLflow store
    (`tmp_path/mlflow.db`, a copy of an empty migrated store: `migrated_store`).

    Without XLA (`trainer.jit_compile=false`, 3-4 s less per process for compiling the CRF) unless `extra`
    sets trainer.jit_compile: the tests of the default path (the MLflow contract, the pyfunc, the tracking
    server) pass `trainer.jit_compile=auto`, and the CRF's XLA functions have their own tests. Likewise
    without the calibration pass (`tracking.calibration=false`, one more compiled function) and the latency
    figures (`tracking.latency_sentences=0`) unless `extra` sets them: the MLflow contract tests do.
    """
    quick = [] if any(e.startswith("trainer.jit_compile=") for e in extra) else ["trainer.jit_compile=false"]
    if not any(e.startswith("tracking.calibration=") for e in extra):
        quick.append("tracking.calibration=false")  # test tagged again with probabilities: the contract tests ask for it
    if not any(e.startswith("tracking.latency_sentences=") for e in extra):
        quick.append("tracking.latency_sentences=0")  # 2 x 100 single-sentence calls, 0.5-3 s: the contract tests ask for it
    if not any(e.startswith("tracking.uri=") for e in extra):
        migrated_store(Path(tmp_path) / "mlflow.db")
    return [
        "data.limit=80",
        "trainer.epochs=1",
        "words.dim=16",
        "words.char_filters=8",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_location={tmp_path}/mlruns",
        *quick,
        *extra,
    ]


# ---------------------------------------------------------------- the same CRF checks on every Keras backend
def compiled_modes() -> list[str]:
    """How the active backend can run a function: eager, and its compilers."""
    import keras

    return {"tensorflow": ["eager", "graph", "xla"], "jax": ["eager", "jit"], "torch": ["eager"]}[keras.backend.backend()]


def shape_modes() -> list[str]:
    """The modes the every-batch-shape checks run in: eager JAX compiles each op on its own (minutes for the
    whole check), so on JAX they run jitted only, as Keras' fit and predict run them."""
    import keras

    return ["jit"] if keras.backend.backend() == "jax" else compiled_modes()


def native_mode() -> str:
    """How a user's code runs the CRF on the active backend: eagerly, or jitted on JAX, whose eager mode
    compiles every op on its own (ten times slower than one jit for the brute-force checks)."""
    import keras

    return "jit" if keras.backend.backend() == "jax" else "eager"


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
