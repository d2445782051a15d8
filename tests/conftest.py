import os
import sys

import pytest

from seqlab.compose import compose
from seqlab.testing import REPO, postgres_missing, tiny_overrides, tracking_server

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
sys.path.insert(0, str(REPO))  # for `experiments`


@pytest.fixture
def tiny_cfg(tmp_path):
    return lambda *extra: compose(tiny_overrides(tmp_path, *extra))


@pytest.fixture(scope="session")
def postgres_tracking():
    """(URI, folder) of one PostgreSQL-backed `mlflow server --serve-artifacts` for the session's server tests
    (they share one pytest-xdist worker: `xdist_group("tracking_server")`). Skips, saying why, only when
    PostgreSQL cannot run here."""
    why = postgres_missing()
    if why:
        pytest.skip(why)
    with tracking_server() as server:
        yield server


LONGEST = ("test_the_crf_suite_and_the_guide_pass_on",)  # a whole test file in a child process, per backend


def pytest_collection_modifyitems(config, items):
    """The longest single tests first (pytest-xdist already sends its largest unit, the tracking-server
    group, first), so that the workers finish together instead of one waiting on a long test started last."""
    items.sort(key=lambda item: item.originalname not in LONGEST)  # stable: the rest keeps its order
