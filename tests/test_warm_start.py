"""The test fork server (seqlab.testing.warm) runs a command as a fresh interpreter would: same output, exit
status, argv, working directory, sys.path, environment and ending, signals and timeouts included."""

import os
import signal
import subprocess
import sys
import time

import pytest

from seqlab.testing import REPO, ctrl_c_as_from_a_terminal, run_cli, run_module, run_script, start_module, warm

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not warm.wanted(), reason="the fork server is off here "
                                                   "(SEQLAB_TEST_FORK=0, or a visible NVIDIA GPU): nothing forks")]

PROBE = """
import atexit, json, os, sys, threading, time
atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread joined", flush=True))).start()
print(json.dumps({"name": __name__, "argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0],
                  "marker": os.environ.get("SEQLAB_PROBE"), "tf": "tensorflow" in sys.modules}))
print("to stderr\\r\\nwith universal newlines", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def test_a_forked_script_behaves_as_a_fresh_one(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {**os.environ, "SEQLAB_PROBE": "yes"}
    warm_proc, fresh = (run_script(script, "3", "a b", cwd=tmp_path, env=env, fresh=f) for f in (False, True))
    assert fresh.returncode == warm_proc.returncode == 3
    assert warm_proc.stderr == fresh.stderr == "to stderr\nwith universal newlines\n"
    tf_free = fresh.stdout.replace('"tf": false', '"tf": true')  # the one difference: what is already imported
    assert warm_proc.stdout == tf_free, (warm_proc.stdout, fresh.stdout)
    assert warm_proc.stdout.splitlines()[1:] == ["thread joined", "atexit ran"]  # the interpreter's own ending


def test_a_missing_folder_is_refused_forked_or_fresh_and_the_server_goes_on(tmp_path):
    for fresh in (False, True):
        with pytest.raises(FileNotFoundError):
            start_module("platform", cwd=tmp_path / "missing", fresh=fresh)
    assert run_module("platform").returncode == 0


def test_a_refused_command_gives_the_same_line_forked_or_fresh(tmp_path):
    args = ("+encoder=bilstm", "+trainer.epoch=3", f"tracking.uri=sqlite:///{tmp_path}/m.db")
    forked, fresh = run_cli(*args), run_cli(*args, fresh=True)
    assert forked.returncode == fresh.returncode == 2
    assert forked.stderr == fresh.stderr and forked.stderr.startswith("error: config key trainer.epoch")


def test_signals_and_timeouts_reach_the_forked_child(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_script(script, timeout=2)
    proc = start_module("http.server", "0", cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert isinstance(proc, warm.Process)
    time.sleep(1)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # http.server ends on KeyboardInterrupt, as from a terminal
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Keyboard interrupt received" in out
    killed = start_module("http.server", "0", cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed.kill()
    assert killed.wait(60) == -signal.SIGKILL


def test_another_start_up_environment_gets_a_fresh_interpreter():
    for proc in (start_module("platform", env={**os.environ, "KERAS_BACKEND": "jax"}, stdout=subprocess.PIPE),
                 start_module("platform", fresh=True, stdout=subprocess.PIPE)):
        assert isinstance(proc, subprocess.Popen)
        assert proc.communicate(timeout=60)[0].strip() and proc.returncode == 0
    folders = warm.importable(os.environ, REPO)["PYTHONPATH"].split(os.pathsep)  # the server's own
    same = {**os.environ, "PYTHONPATH": os.pathsep.join([*folders, *folders, ""])}  # the same folders, each once
    forked = start_module("platform", env=same, stdout=subprocess.PIPE)
    assert isinstance(forked, warm.Process) and forked.args == [sys.executable, "-m", "platform"]
    assert forked.communicate(timeout=60)[0].strip() and forked.returncode == 0


def test_a_shell_scripts_python_forks_and_passes_on_status_signals_and_the_rest(tmp_path):
    """warm.python_on_path: `python SCRIPT` and `python -m MODULE` in a shell script fork; `python -c` runs the
    real interpreter; a signal to the script's python reaches the forked child and ends it the same way."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = warm.python_on_path({**os.environ, "SEQLAB_PROBE": "yes"}, REPO)
    shell = (f"cd {tmp_path} && python probe.py 3 'a b'; echo status=$?; python -c 'import sys; "
             "print(\"tensorflow\" in sys.modules)'")
    out = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=120)
    fresh = run_script(script, "3", "a b", cwd=tmp_path, env=env, fresh=True)
    assert out.stdout.splitlines()[0] == fresh.stdout.splitlines()[0].replace('"tf": false', '"tf": true')
    assert out.stdout.splitlines()[1:] == ["thread joined", "atexit ran", "status=3", "False"]
    assert out.stderr == "to stderr\nwith universal newlines\n"

    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT: an uncaught KeyboardInterrupt ends by SIGINT too
        ends = []
        for python in ("python", sys.executable):  # the forked one, then a fresh interpreter
            proc = subprocess.Popen(["bash", "-c", f"exec {python} {sleeper}"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, preexec_fn=ctrl_c_as_from_a_terminal)
            assert proc.stdout.readline() == "started\n"
            proc.send_signal(sig)
            ends.append(proc.wait(60))
            proc.stdout.close()
        assert ends == [-sig, -sig], (sig, ends)
