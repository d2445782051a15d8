import os
import sys

import pytest

from seqlab.compose import compose
from seqlab.testing import REPO, tiny_overrides

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
sys.path.insert(0, str(REPO))  # for `experiments`


@pytest.fixture
def tiny_cfg(tmp_path):
    return lambda *extra: compose(tiny_overrides(tmp_path, *extra))
