import os
import subprocess
import sys

from seqlab.runtime.threads import cores  # imports no backend: the thread variables below still apply


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker (and every process it starts) gets cores // workers threads in
    TensorFlow and OpenMP, as seqlab.runtime.threads shares them between parallel jobs: two workers with
    TensorFlow's default of all cores each oversubscribe the machine (the fast tier: 148 s -> 135 s on 2 cores).
    Set before anything imports TensorFlow; a variable the user set wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, cores() // workers))
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(var, share)


def _compile_quickly() -> None:
    """XLA without LLVM's costly optimisation passes, for every process the tests start (TensorFlow's
    `jit_compile` and the JAX backend read XLA_FLAGS at start-up): the programs compute the same results and
    compile in far less time, which is most of what the JAX children spend (the backend tests: 57 -> 44 CPU-s
    for the CRF suite, 57 -> 40 for a run, 2026-12-03). Set before anything imports TensorFlow; a user's
    XLA_FLAGS wins."""
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")


_share_the_cores()
_compile_quickly()

if os.environ.get("PYTEST_XDIST_WORKER"):  # not in xdist's controller, which runs no test
    from seqlab.runtime.quiet import import_backend

    import_backend()  # as seqlab's entry points start it: TensorFlow without JAX (1.3-2 s less per worker)

import pytest  # noqa: E402

from seqlab.config import compose  # noqa: E402
from seqlab.testing import REPO, postgres_missing, tiny_overrides, tracking_server  # noqa: E402

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


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs file systems (root only); skip where mounting is not allowed."""
    mounted = []

    def mount(name, size="8m"):
        where = tmp_path / name
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): a full or read-only disk cannot be made")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


LONGEST = ("test_the_crf_suite_the_guide_and_a_tagger_saved", "test_the_minilm_tagger_learns",
           "test_the_conll2003_recipe_script", "test_runs_page_shows_f1_columns",
           "test_a_run_on_another_backend_logs_the_same_contract", "test_hyperband_search_runs_its_brackets",
           "test_mlflow_models_serve_answers", "test_a_search_over_encoders_and_heads")  # 25-100 s each, 2026-12-03


def pytest_collection_modifyitems(config, items):
    """The longest single tests first (pytest-xdist already sends its largest unit, the tracking-server
    group, first), so that the workers finish together instead of one waiting on a long test started last."""
    items.sort(key=lambda item: not item.originalname.startswith(LONGEST))  # stable: the rest keeps its order


def pytest_collection_finish(session):
    """With end-to-end tests selected, start this worker's fork server now (seqlab.testing.warm): it imports
    TensorFlow, MLflow and Hydra while the first tests run."""
    if any(item.get_closest_marker("slow") for item in session.items):
        from seqlab.testing import warm

        warm.start_early(REPO)
