"""`python -m MODULE ARGS` for the tests, without paying the imports each time: a fork server.

Each end-to-end test starts the entry points as a user does, and each such process used to spend 8-12 s of
its 15-25 s importing TensorFlow, Keras, MLflow and Hydra before doing anything. Here one server process per
test worker imports them once (`PRELOAD`) and then forks a child per command, as multiprocessing's
forkserver does. The child takes the caller's working directory, environment, argv and output pipes, runs
the module with `runpy` exactly as `python -m` would (`__main__`, sys.argv, sys.path[0]), ends the way the
interpreter ends (non-daemon threads joined, atexit handlers run) and reports its real exit status; a
signal sent to its pid reaches it as it would reach a fresh process.

A shell script that a test runs as a user does can fork its `python` too (`python_on_path`).

What a fork cannot reproduce runs in a fresh interpreter instead (`_Server.serves` decides): an environment
that differs in what is read while starting up (`STARTUP`: the Python path, the Keras backend, TensorFlow's
and the thread libraries' settings). `SEQLAB_TEST_FORK=0` turns the server off; so does a visible NVIDIA GPU.

The server imports TensorFlow and lists its devices, and runs no op: its thread pools start in each child,
at the child's first op. Before the fork the server holds only idle library threads (OpenBLAS, jemalloc:
counted on the 2-core machine), and those libraries register their own fork handlers.

    python -m seqlab.testing.warm SOCKET_PATH     # the server; seqlab.testing.run_module starts it
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Imported once by the server; each child finds them loaded (the pipeline, the search, the figures,
# MLflow's model flavours, the scorers: everything an end-to-end test run touches).
# "module:function" also calls the function once. Not experiments.run itself: runpy runs it anew.
PRELOAD = ("seqlab.runtime.quiet:import_tensorflow", "keras", "hydra", "hydra._internal.utils", "mlflow",
           "mlflow.pyfunc", "mlflow.models", "seqlab.jobs.entry", "seqlab.jobs.pipeline", "seqlab.jobs.search",
           "seqlab.jobs.sweep", "seqlab.compare.cli", "seqlab.export.cli", "seqlab.evaluation.figures",
           "seqlab.model.transition_figures", "matplotlib.pyplot", "seqeval.metrics", "seqlab.config",
           # What MLflow loads lazily at a run's first store call and first logged model (~2 s a child,
           # 2026-12-03): the SQL store with its mapped tables configured (no engine, no connection), git for
           # the run's source tags, the system-metrics monitor, and the map of installed packages that
           # log_model checks the model's requirements against.
           "mlflow.store.tracking.sqlalchemy_store", "sqlalchemy.dialects.sqlite", "sqlalchemy.orm:configure_mappers",
           "git", "mlflow.system_metrics.system_metrics_monitor", "mlflow.tracing.processor.base_mlflow",
           "mlflow.utils.requirements_utils:_init_packages_to_modules_map")
# Environment read while the interpreter and these libraries start: a caller whose values differ gets a
# fresh interpreter.
STARTUP = ("PYTHON", "KERAS_", "TF_", "XLA_", "JAX_", "OMP_", "MKL_", "OPENBLAS_", "CUDA", "LD_", "MALLOC_", "HF_",
           "MPL")
_HEADER = struct.Struct("!I")


def startup_env(env: dict) -> dict:
    """The part of `env` that the interpreter and the preloaded libraries read at import (with the log level
    that seqlab.runtime.quiet sets when it is unset)."""
    found = {k: v for k, v in env.items() if k.startswith(STARTUP)}
    found.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "PYTHONPATH" in found:  # the same folders, each once
        found["PYTHONPATH"] = list(dict.fromkeys(p for p in found["PYTHONPATH"].split(os.pathsep) if p))
    return found


def importable(env, repo: Path) -> dict:
    """A copy of `env` with the repository first on PYTHONPATH (`python -m experiments.run` from anywhere)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------- the client (the test worker)
class _Server:
    """The fork server of this test worker: started on first use, stopped when the worker exits."""

    def __init__(self, repo: Path):
        self.folder = tempfile.mkdtemp(prefix="seqlab-warm-")
        self.path = os.path.join(self.folder, "socket")
        self.env = importable(os.environ, repo)
        self.startup = startup_env(self.env)
        self.log = open(os.path.join(self.folder, "server.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "seqlab.testing.warm", self.path], cwd=repo,
                                     env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.ready = False
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 180) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready and self.proc.poll() is None and time.monotonic() < deadline:
            self.ready = os.path.exists(self.path + ".ready")
            if not self.ready:
                time.sleep(0.05)
        return self.ready and self.proc.poll() is None

    def serves(self, env: dict) -> bool:
        """Whether a child of this server starts as a fresh interpreter with `env` would."""
        return startup_env(env) == self.startup

    def stop(self, keep_log: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        if not keep_log:
            shutil.rmtree(self.folder, ignore_errors=True)

def target(argv: list[str]) -> dict | None:
    """What `python ARGV` runs, as a request for the server: `-m MODULE ARGS` or `SCRIPT ARGS`; None for
    anything else (`-c`, interpreter options, no arguments)."""
    if len(argv) >= 2 and argv[0] == "-m":
        return {"module": argv[1], "args": list(argv[2:]), "argv": list(argv)}
    if argv and not argv[0].startswith("-"):
        return {"script": argv[0], "args": list(argv[1:]), "argv": list(argv)}
    return None


class Process:
    """A child of the fork server, used as a `subprocess.Popen` (text mode) is: pid, returncode, poll, wait,
    communicate, send_signal, terminate, kill, and `stdout` / `stderr` text pipes where subprocess.PIPE asked
    for them (DEVNULL, or None: this process' own)."""

    def __init__(self, path: str, target: dict, cwd, env: dict, stdout=None, stderr=None):
        """`path`: the server's socket (its log lies beside it)."""
        self.args = [sys.executable, *target["argv"]]
        if not os.path.isdir(cwd):  # as Popen refuses it, before anything starts
            raise FileNotFoundError(2, "No such file or directory", str(cwd))
        self.returncode = None
        self._log = os.path.join(os.path.dirname(path), "server.log")
        ends, theirs = [], []
        for how, own in ((stdout, 1), (stderr, 2)):
            if how == subprocess.PIPE:
                read, write = os.pipe()
                ends.append(open(read, encoding="utf-8", errors="replace"))  # universal newlines, as text=True
                theirs.append(write)
            else:
                ends.append(None)
                theirs.append(os.open(os.devnull, os.O_WRONLY) if how == subprocess.DEVNULL else os.dup(own))
        self.stdout, self.stderr = ends
        request = json.dumps({**target, "cwd": str(cwd), "env": env}).encode()
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = b""
        try:
            self._conn.connect(path)
            socket.send_fds(self._conn, [_HEADER.pack(len(request))], theirs)
            self._conn.sendall(request)
        finally:
            for fd in theirs:
                os.close(fd)
        self.pid = json.loads(self._line(None))["pid"]
        self._readers: list | None = None
        self._output: dict = {}

    def _line(self, timeout: float | None) -> bytes | None:
        """The server's next reply line, or None if none came within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._conn], [], [], left)[0]:
                return None
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError(f"the test fork server exited while {self.args} ran: see {self._log}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _status(self, timeout: float | None) -> bool:
        """Whether the child has ended (its status read into `returncode`) within `timeout` seconds."""
        if self.returncode is None:
            line = self._line(timeout)
            if line is None:
                return False
            self.returncode = json.loads(line)["status"]
            self._conn.close()
        return True

    def poll(self) -> int | None:
        self._status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._status(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        if self._readers is None:
            self._readers = [threading.Thread(target=self._drain, args=(name,), daemon=True)
                             for name in ("stdout", "stderr") if getattr(self, name) is not None]
            for reader in self._readers:
                reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in self._readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self._output.get("stdout"), self._output.get("stderr")

    def _drain(self, name: str) -> None:
        with getattr(self, name) as pipe:
            self._output[name] = pipe.read()

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never to a pid the system may since have given to another process
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.wait()


_server: _Server | None = None
_failed = False


def server(repo: Path) -> _Server | None:
    """This worker's fork server (started now if it is not yet), or None when it is off or could not start."""
    global _server, _failed
    if _failed or not wanted():
        return None
    if _server is None:
        _server = _Server(repo)
    if not _server.wait_ready():
        _failed = True
        print(f"seqlab.testing.warm: the fork server did not start ({_server.log.name}); fresh interpreters from "
              "now on", file=sys.stderr)
        _server.stop(keep_log=True)
        return None
    return _server


def python_on_path(env: dict, repo: Path) -> dict:
    """A copy of `env` whose `python` (first on PATH) forks `python -m MODULE ...` and `python SCRIPT ...` from
    this worker's server, for a test that runs a shell script as a user does (scripts/reproduce_conll2003.sh
    ends in `exec python -m experiments.run`); `env` itself where the server is off or would not start that
    environment the same way. Anything else the script asks of `python` runs the real interpreter."""
    found, served = server(repo), importable(env, repo)
    if found is None or not found.serves(served):
        return env
    folder = os.path.join(found.folder, "bin")
    shim = os.path.join(folder, "python")
    if not os.path.exists(shim):
        os.makedirs(folder, exist_ok=True)
        with open(shim + ".tmp", "w") as out:
            out.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m seqlab.testing.warm --as-python "$@"\n')
        os.chmod(shim + ".tmp", 0o755)
        os.replace(shim + ".tmp", shim)
    return {**served, "PATH": folder + os.pathsep + env.get("PATH", ""), "SEQLAB_WARM_SOCKET": found.path,
            "SEQLAB_WARM_STARTUP": json.dumps(found.startup)}


def as_python(args: list[str]) -> int:
    """`python ARGS` where python_on_path put this on PATH: forked from the server at $SEQLAB_WARM_SOCKET when
    ARGS are `-m MODULE ...` or `SCRIPT ...` and the start-up environment is still the server's; else the real
    interpreter takes this process over. Signals reach the child; its exit status (or signal) is ours. Its
    stdin is /dev/null, as for every child of the server."""
    path = os.environ.get("SEQLAB_WARM_SOCKET", "")
    same = json.loads(os.environ.get("SEQLAB_WARM_STARTUP", "null")) == startup_env(os.environ)
    request = target(args)
    missing = request is not None and "script" in request and not os.path.isfile(request["script"])
    if request is None or missing or not same or not os.path.exists(path):  # the interpreter says what is wrong
        os.execv(sys.executable, [sys.executable, *args])
    child = Process(path, request, os.getcwd(), dict(os.environ))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored when we started: the interpreter would ignore it
            signal.signal(sig, lambda number, _: child.send_signal(number))
    status = child.wait()
    if status < 0:  # killed by a signal: so are we
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def start_early(repo: Path) -> None:
    """Start the server now, without waiting: it imports while the first tests run."""
    global _server
    if _server is None and wanted():
        _server = _Server(repo)


def wanted() -> bool:
    """Unless SEQLAB_TEST_FORK=0, or an NVIDIA GPU is visible: TensorFlow probes CUDA while it loads, and a
    CUDA context does not survive a fork, so there each command gets a fresh interpreter."""
    gpu = os.path.exists("/dev/nvidiactl") and os.environ.get("CUDA_VISIBLE_DEVICES", "0") not in ("", "-1")
    return os.environ.get("SEQLAB_TEST_FORK", "1") != "0" and not gpu


# ---------------------------------------------------------------- the server
def _preload() -> None:
    for name in PRELOAD:
        module, _, function = name.partition(":")
        try:
            loaded = importlib.import_module(module)
        except ImportError:  # an optional package that is not installed
            continue
        call = getattr(loaded, function, None) if function else None
        if callable(call):  # a private helper another version may lack is skipped
            call()


def _child(request: dict, out_fd: int, err_fd: int) -> None:
    """Become `python -m MODULE ARGS` (or `python SCRIPT ARGS`) in the caller's directory and environment;
    never returns (a child must not go back to the server's loop, whatever fails)."""
    code = 1
    try:
        _become(request, out_fd, err_fd)
        code = _run(request)
    finally:
        os._exit(code)


def _become(request: dict, out_fd: int, err_fd: int) -> None:
    """The caller's pipes, directory and environment, and what a new interpreter would not inherit."""
    import random

    stdin = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((stdin, 0), (out_fd, 1), (err_fd, 2)):
        os.dup2(fd, target)
        os.close(fd)
    for name in ("SIGTERM", "SIGINT", "SIGCHLD"):
        signal.signal(getattr(signal, name), signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # read $TMPDIR again
    random.seed()
    if "numpy" in sys.modules:  # its global generator, seeded from the system as in a new interpreter
        sys.modules["numpy"].random.seed()


def _run(request: dict) -> int:
    """Run the module or script as the interpreter would; its exit status."""
    import runpy

    code = 0
    try:
        if "module" in request:
            sys.argv = [request["module"], *request["args"]]
            sys.path[0] = os.getcwd()  # what `python -m` puts first
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [request["script"], *request["args"]]
            sys.path[0] = os.path.dirname(os.path.abspath(request["script"]))  # what `python SCRIPT` puts first
            runpy.run_path(request["script"], run_name="__main__")
    except SystemExit as stop:
        code = _exit_status(stop.code)
    except BaseException as e:  # as the interpreter: the traceback, status 1
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT if isinstance(e, KeyboardInterrupt) else 1
    try:  # the interpreter's own ending
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = code or 1
    if code == -signal.SIGINT:  # an uncaught Ctrl-C: the interpreter ends by SIGINT itself, for its shell
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _accept(listener: socket.socket, children: dict) -> None:
    conn, _ = listener.accept()
    fds: list = []
    try:
        header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 2)
        size, = _HEADER.unpack(header)
        body = b""
        while len(body) < size and (chunk := conn.recv(size - len(body))):
            body += chunk
        request = json.loads(body)
    except (OSError, ValueError, struct.error):  # a caller that went away mid-request: serve the next one
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        for other in children.values():
            other.close()
        _child(request, *fds)
    for fd in fds:
        os.close(fd)
    children[pid] = conn
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:  # the caller went away; the child still runs and is reaped
        pass


def _reap(children: dict) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            except OSError:  # the caller gave up (a timeout)
                pass
            conn.close()


def serve(path: str) -> None:
    """Preload, then fork one child per request until the test worker that started us exits."""
    parent = os.getppid()
    _preload()
    gc.collect()
    gc.freeze()  # the children share these objects' pages instead of copying them at their first collection
    children: dict = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(16)
        Path(path + ".ready").touch()
        while os.getppid() == parent:
            ready, _, _ = select.select([listener], [], [], 0.05)
            if ready:
                _accept(listener, children)
            _reap(children)


if __name__ == "__main__":
    if sys.argv[1] == "--as-python":
        sys.exit(as_python(sys.argv[2:]))
    serve(sys.argv[1])
