"""Every script in scripts/ still runs: a `--smoke` run of each, as a user starts it (the benchmarks' real runs
are long; docs/benchmarks.md records them)."""

import os
import subprocess

import pytest

from seqlab.testing import REPO, SHARED_DATA, run_script, warm

pytestmark = pytest.mark.slow
CONLL2003 = (SHARED_DATA / "conll2003" / "train.txt").exists()

SMOKES = {
    "bench_crf.py": ([], "| 9 | Viterbi decode |"),
    "bench_jit.py": ([], "| cnn | crf | decode | graph |"),
    "bench_memory.py": ([], "| data.limit=40"),
    "bench_overhead.py": ([], "seqlab train / bare"),
    "bench_peers.py": (["--torch"], "| CRF Viterbi |"),  # the race and where decoding goes
    "bench_scaling.py": ([], "| all |"),
    "bench_tuner_memory.py": ([], "RSS after trial"),
    "plot_f1_over_time.py": ([], "test entity_f1 >= 0.85: epoch 3"),
}


def test_every_script_has_a_smoke_run():
    scripts = {p.name for p in (REPO / "scripts").glob("*.py")}
    assert scripts == set(SMOKES)


@pytest.mark.parametrize("script", sorted(SMOKES))
def test_the_smoke_run_of(script, tmp_path):
    if script == "bench_peers.py" and not CONLL2003:
        pytest.skip("the shared CoNLL-2003 files are absent")
    extra, expected = SMOKES[script]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = run_script(REPO / "scripts" / script, "--smoke", *extra, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert expected in proc.stdout, proc.stdout[-3000:]


@pytest.mark.skipif(not CONLL2003, reason="the shared CoNLL-2003 files are absent")
def test_the_conll2003_recipe_script_runs_and_resumes(tmp_path):
    # The script's `python` forks from this worker's server (seqlab.testing.warm): the same command, without
    # a fresh interpreter importing TensorFlow, MLflow and Hydra twice.
    env = warm.python_on_path({**os.environ, "CHECKPOINT": str(tmp_path / "ckpt")}, REPO)
    common = [f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_location={tmp_path}/mlruns",
              "data.limit=30", "trainer.max_minutes=null", "trainer.test_each_epoch=false", "tracking.log_model=false",
              "encoder.units=8", "words.dim=8", "words.char_filters=8", "trainer.jit_compile=false",
              "tracking.calibration=false", "tracking.latency_sentences=0", f"hydra.run.dir={tmp_path}/out"]
    for epochs in (1, 2):  # the same command again continues the same run
        proc = subprocess.run(["bash", str(REPO / "scripts" / "reproduce_conll2003.sh"), str(SHARED_DATA),
                               f"trainer.epochs={epochs}", *common], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout + proc.stderr  # Hydra logs to stdout
