"""Ctrl-C and SIGTERM that are never lost.

SIGTERM is what `timeout`, `docker stop`, Kubernetes and Slurm send; it is
handled exactly like Ctrl-C: a KeyboardInterrupt ends the MLflow run KILLED,
a search stays resumable, and the entry point exits 128 + the signal number
(130 for SIGINT, 143 for SIGTERM).

Python raises KeyboardInterrupt wherever the main thread happens to be; inside
a garbage-collection callback (frequent with TensorFlow) it is printed and
ignored, and the search would go on. `install()` remembers the request, and
`check()` raises it again at the next safe point (epoch end, trial start).

A multirun whose jobs run in worker processes (Hydra's joblib launcher) installs
with `forward_to_children=True`: the signal is passed on to every descendant
process as SIGTERM (the workers ignore SIGINT), so each job ends its own run
KILLED; `end_children` then waits for them and kills what is left.
"""

from __future__ import annotations

import os
import signal

_requested: int | None = None  # the signal number received, if any
_forward = False
CHILD_GRACE = 20.0  # seconds the job processes get to end their runs after SIGTERM


# Helper processes that clean up after the others and exit with this one (their pipe closes): left alone, or they
# lose track of what they clean (loky's resource tracker, relaunched after a SIGTERM, printed a traceback per file).
HELPERS = ("resource_tracker",)


def descendants() -> list:
    """This process' live descendants (psutil.Process objects) but its helpers, deepest first."""
    import psutil

    try:
        found = list(reversed(psutil.Process(os.getpid()).children(recursive=True)))
    except psutil.Error:
        return []
    out = []
    for child in found:
        try:
            if not any(helper in " ".join(child.cmdline()) for helper in HELPERS):
                out.append(child)
        except psutil.Error:
            pass
    return out


def _handler(signum, frame):
    global _requested
    first = _requested is None
    _requested = signum
    if _forward and first:
        end_children()  # before this process unwinds: a launcher aborting its pool would kill them mid-run
    raise KeyboardInterrupt


def install(forward_to_children: bool = False) -> None:
    """Take over SIGINT and SIGTERM, unless ignored (a background job keeps ignoring SIGINT)."""
    global _forward
    _forward = _forward or forward_to_children
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _handler):
        signal.signal(signal.SIGINT, _handler)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, _handler):
        signal.signal(signal.SIGTERM, _handler)


def end_children(grace: float = CHILD_GRACE) -> int:
    """Wait up to `grace` seconds for this process' descendants to exit (they got SIGTERM), then kill the
    rest. Returns how many had to be killed."""
    import psutil

    children = descendants()
    for child in children:
        try:
            child.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    return len(alive)


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C or SIGTERM arrived, even if the first one was swallowed."""
    if _requested is not None:
        raise KeyboardInterrupt


def requested() -> bool:
    return _requested is not None


def exit_status() -> int:
    """The shell's status for the interruption: 128 + signal number (130 when unknown: Ctrl-C)."""
    return 128 + (_requested or signal.SIGINT)


def signal_name() -> str:
    return signal.Signals(_requested).name if _requested else "SIGINT"

