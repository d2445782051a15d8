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
