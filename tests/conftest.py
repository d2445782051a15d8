import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))  # for `experiments`


def compose(overrides: list[str]):
    """Compose the real config from conf/ with Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from seqlab.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def free_port() -> int:
    """A loopback port with nothing listening on it (for servers the tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120, proc=None) -> None:
    """Wait until `url` answers; if the server process `proc` exits first, fail with its stderr."""
    import time
    import urllib.request

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


@pytest.fixture
def tiny_cfg(tmp_path):
    return lambda *extra: compose(tiny_overrides(tmp_path, *extra))
