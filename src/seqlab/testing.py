"""Helpers for tests and scripts: tiny configs, free ports, servers that answer.

Importable (unlike conftest.py), so scripts and tests share them:

    from seqlab.testing import REPO, tiny_overrides, free_port, wait_http
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from seqlab.compose import compose  # noqa: F401  (tests compose the real config)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"  # public corpora beside the clone; tests skip without them


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


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """A run that takes seconds: few sentences, small layers, one epoch, a private MLflow store."""
    return [
        "data.limit=80",
        "trainer.epochs=1",
        "words.dim=16",
        "words.char_filters=8",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_location={tmp_path}/mlruns",
        *extra,
    ]
