"""Ctrl-C and SIGTERM that are never lost.

SIGTERM is what `timeout`, `docker stop`, Kubernetes and Slurm send; it is
handled exactly like Ctrl-C: a KeyboardInterrupt ends the MLflow run KILLED,
a search stays resumable, and the entry point exits 128 + the signal number
(130 for SIGINT, 143 for SIGTERM).

Python raises KeyboardInterrupt wherever the main thread happens to be; inside
a garbage-collection callback (frequent with TensorFlow) it is printed and
ignored, and the search would go on. `install()` remembers the request, and
`check()` raises it again at the next safe point (epoch end, trial start).
"""

from __future__ import annotations

import signal

_requested: int | None = None  # the signal number received, if any


def _handler(signum, frame):
    global _requested
    _requested = signum
    raise KeyboardInterrupt


def install() -> None:
    """Take over SIGINT and SIGTERM, unless ignored (a background job keeps ignoring SIGINT)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C or SIGTERM arrived, even if the first one was swallowed."""
    if _requested is not None:
        raise KeyboardInterrupt


def exit_status() -> int:
    """The shell's status for the interruption: 128 + signal number (130 when unknown: Ctrl-C)."""
    return 128 + (_requested or signal.SIGINT)


def signal_name() -> str:
    return signal.Signals(_requested).name if _requested else "SIGINT"
