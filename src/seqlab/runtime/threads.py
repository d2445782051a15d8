"""How many CPU threads one job's backend may use, so that parallel jobs do not oversubscribe the cores.

`trainer.threads` (set) wins. Otherwise, when Hydra's joblib launcher runs
`hydra.launcher.n_jobs` jobs at once, each gets cores // n_jobs threads; under
Hydra's Ray launcher each job gets the CPUs Ray reserved for it
(`hydra.launcher.ray.remote.num_cpus`, default 1); a job run alone keeps its
backend's default (all cores).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("seqlab")
applied: int | None = None  # what `apply` set in this process (None: the backend's default)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _launcher():
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().launcher
    except ValueError:  # composed without @hydra.main
        return None


def parallel_jobs() -> int:
    """How many jobs Hydra's launcher runs at once on this machine: joblib's n_jobs (negative: cores + 1 +
    n_jobs), else 1."""
    launcher = _launcher()
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    return max(1, n_jobs if n_jobs > 0 else cores() + 1 + n_jobs)


def ray_cpus() -> int | None:
    """The CPUs Ray reserves for each job under Hydra's Ray launcher (`hydra.launcher.ray.remote.num_cpus`,
    Ray's default 1), or None under another launcher."""
    launcher = _launcher()
    if launcher is None or "ray_launcher" not in str(launcher.get("_target_", "")):
        return None
    remote = launcher.get("ray", {}).get("remote") or {}
    return max(1, int(remote.get("num_cpus") or 1))


def decide(setting: int | None) -> tuple[int | None, str]:
    """(threads, why): trainer.threads; or the CPUs Ray reserved for the job; or cores // parallel jobs when
    joblib runs jobs in parallel; or (None, ...) for the backend's default (all cores)."""
    if setting:
        return int(setting), "trainer.threads"
    reserved = ray_cpus()
    if reserved is not None:
        return reserved, "hydra.launcher.ray.remote.num_cpus"
    jobs = parallel_jobs()
    return (max(1, cores() // jobs) if jobs > 1 else None), f"{cores()} cores / {jobs} parallel jobs"


def apply(setting: int | None) -> int | None:
    """Limit the Keras backend's intra-op threads (call after importing it, before it runs anything)."""
    global applied
    threads, why = decide(setting)
    if threads is None:
        return None
    from seqlab.runtime.quiet import backend_name

    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except RuntimeError:  # a reused worker process: TensorFlow keeps its first setting
            threads = tf.config.threading.get_intra_op_parallelism_threads() or threads
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
    else:  # JAX reads XLA_FLAGS at import; its CPU client has no thread setting later
        log.info("trainer.threads=%s is not applied on %s", threads, backend)
        return None
    log.info("%d CPU thread(s) for this job (%s)", threads, why)
    applied = threads
    return threads
