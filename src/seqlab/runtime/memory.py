"""Resident memory: reading it (`resident_mib`, `peak_rss_mib`), and two cheap cuts in a job's resident
memory, made by the entry point (trainer.lean_memory).

`limit_malloc_arenas`: glibc gives each thread that contends for the heap an
arena of its own, up to 8 per core, and memory freed in one arena is not
reused by another; TensorFlow's thread pools spread a job's allocations over
many of them. Capping them at one per core keeps the memory that one thread
frees for the next (measured on the main command: see docs/benchmarks.md,
"Memory"). An explicit `MALLOC_ARENA_MAX` in the environment wins.

`release_library_pages`: give the kernel back the library pages that importing
the backend touched once. `import tensorflow` maps TensorFlow's shared
libraries and, while it registers its ops and kernels, reads about 330 MiB of
their code and read-only data (libtensorflow_cc alone: 250 MiB). Those pages
stay in the process' resident memory (RSS) for as long as it lives, although
most are never touched again: they were a quarter of the main command's peak
RSS. `madvise(MADV_PAGEOUT)` (Linux 5.4 and later) asks the kernel to reclaim
them now; a page that training does need again is read back from the page
cache or the disk on its first touch (measured: the same epoch times).

Only the backend's read-only and executable mappings are advised; the kernel
skips pages another process also maps, and never discards data (a written page
would only go to swap). Elsewhere (macOS, older kernels) it does nothing.

`long_lived_frozen`: a search's trials each start with full garbage collections (keras-tuner collects twice
before building a trial's model, and seqlab's prepare once more in clear_session), and each walks every object
the imports made: about half a million with TensorFlow loaded, 0.6-1 s a collection. Inside the block they skip what was alive on entry.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import logging
import os
import sys

log = logging.getLogger("seqlab")

MADV_PAGEOUT = 21  # linux/mman.h
M_ARENA_MAX = -8  # malloc.h
BACKEND_PACKAGES = ("tensorflow", "jaxlib", "torch")  # whose shared libraries are released


def limit_malloc_arenas(arenas: int | None = None) -> int | None:
    """Cap glibc's malloc arenas at `arenas` (default: one per core) unless MALLOC_ARENA_MAX is set;
    returns the cap applied, or None (not glibc, or the environment decides). Call it before the
    backend starts its threads."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return None
    arenas = max(1, int(arenas or os.cpu_count() or 1))
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # another C library (musl)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return arenas if mallopt(M_ARENA_MAX, arenas) == 1 else None


def package_dirs(names=BACKEND_PACKAGES) -> list[str]:
    """The installed directories of those packages that are imported (each with a trailing slash)."""
    dirs = []
    for name in names:
        if name not in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(os.path.join(os.path.realpath(location), ""))
    return dirs


def read_only_mappings(dirs: list[str], maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """(start, end) addresses of the read-only or executable file mappings under `dirs`."""
    found = []
    with open(maps) as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or "w" in parts[1]:
                continue
            path = parts[5].strip()
            if any(path.startswith(d) for d in dirs):
                start, end = (int(v, 16) for v in parts[0].split("-"))
                found.append((start, end))
    return found


def peak_rss_mib() -> float:
    """This process' peak resident memory so far, in MiB (a multirun's jobs in one process share it)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def resident_mib(pid: int | str = "self") -> float | None:
    """A process' current resident memory (VmRSS) in MiB (default: this one); None where /proc is
    absent or the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def release_library_pages(dirs: list[str] | None = None) -> float:
    """Advise the kernel to reclaim the read-only file pages mapped from `dirs` (default: the imported
    backend's package directories); returns the MiB of RSS given back (0.0 where that is not possible)."""
    if not sys.platform.startswith("linux"):
        return 0.0
    dirs = package_dirs() if dirs is None else [os.path.join(os.path.realpath(d), "") for d in dirs]
    if not dirs:
        return 0.0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    before = resident_mib()
    for start, end in read_only_mappings(dirs):
        if libc.madvise(start, end - start, MADV_PAGEOUT) != 0:  # EINVAL: a kernel before 5.4
            log.debug("madvise(MADV_PAGEOUT) failed: %s", os.strerror(ctypes.get_errno()))
            return 0.0
    after = resident_mib()
    return max(0.0, before - after) if before is not None and after is not None else 0.0


@contextlib.contextmanager
def long_lived_frozen():
    """Within the block, Python's garbage collections skip every object alive on entry (the imported modules,
    the corpus): gc.freeze after one collection. On exit they are collectable again (gc.unfreeze), so a long
    process (a notebook, a sweep's worker) keeps nothing that a later release makes garbage. Inside a block
    that froze already, it does nothing."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
