"""The MLflow tracking store, checked before anything heavy runs, and kept usable when its disk fills.

`check_store` answers in seconds, before the data is read or TensorFlow is
imported: a tracking server that cannot be reached, or a SQLite store (or
artifact folder, the experiment's own included) that cannot be written, is
one `StoreError` line. `creation_lock` serialises the creation of a new SQLite
store: MLflow builds its schema with no lock of its own, and N processes
starting together on a store that does not exist yet otherwise crash on
`table ... already exists`. `reserve` holds a little disk space beside a local
store while a job runs: when the disk fills mid-run, `release_reserve` frees it
so that the run can still be ended FAILED (SQLite needs room to write even
that), and `describe_failure` names the full path in one line.

Only the standard library is imported at module level (no MLflow, no
TensorFlow): entry points call this first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from seqlab.errors import SeqlabError

PROBE_BYTES = 1 << 20  # a store whose disk cannot take 1 MiB more is full for our purposes
SERVER_TIMEOUT = 5.0  # seconds for the reachability check of a tracking server


class StoreError(SeqlabError):
    """The tracking store cannot be reached or written."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (None for other stores or in-memory SQLite)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    path = parsed.path
    if uri.startswith("sqlite:////"):
        path = "/" + path.lstrip("/")  # absolute
    else:
        path = path.lstrip("/")  # sqlite:///relative.db
    if not path or path == ":memory:":
        return None
    return Path(path)


def check_store(uri: str, artifact_location: str | None = None, experiment: str | None = None) -> None:
    """Raise StoreError in one line when the store at `uri` cannot be used: a server that does not answer,
    a read-only or full disk under the store, its artifact folder or `experiment`'s own artifact folder."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri)
        return
    db = sqlite_path(uri)
    if db is not None:
        if "mode=ro" in urllib.parse.urlparse(uri).query:
            raise StoreError(f"the tracking store {uri} is opened read-only (mode=ro): runs cannot be recorded")
        _check_writable_dir(db.parent if str(db.parent) else Path("."), f"the tracking store {uri}")
        if db.exists() and not os.access(db, os.W_OK):
            raise StoreError(f"cannot write to the tracking store {uri}: {db} is read-only")
    if artifact_location is None and scheme in ("sqlite", ""):
        artifact_location = "mlruns"  # MLflow's default next to a local store
    if artifact_location and urllib.parse.urlparse(str(artifact_location)).scheme in ("", "file"):
        folder = Path(urllib.parse.urlparse(str(artifact_location)).path or str(artifact_location))
        _check_writable_dir(folder, f"the artifact folder {artifact_location} of the tracking store {uri}")
    if db is not None and experiment:
        folder = experiment_artifact_folder(db, experiment)
        if folder is not None:
            _check_writable_dir(folder, f"the artifact folder {folder} of experiment {experiment!r}")


def experiment_artifact_folder(db: Path, experiment: str) -> Path | None:
    """The local artifact folder the SQLite store `db` records for `experiment` (None: no such experiment
    yet, an artifact store that is not a local folder, or no store). Read with sqlite3 alone."""
    import sqlite3

    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
            row = connection.execute("SELECT artifact_location FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
                                     (experiment,)).fetchone()
    except sqlite3.Error:
        return None
    if not row or not row[0]:
        return None
    parsed = urllib.parse.urlparse(row[0])
    if parsed.scheme not in ("", "file"):
        return None
    return Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else row[0])


def _check_server(uri: str) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=SERVER_TIMEOUT):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server is there (a proxy may not serve /health)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        if isinstance(reason, OSError) and reason.strerror:
            reason = reason.strerror
        raise StoreError(f"cannot reach the tracking server {uri}: {reason}") from None


def _check_writable_dir(folder: Path, what: str) -> None:
    """Create `folder` if needed and write (then remove) a probe file of PROBE_BYTES in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".seqlab-probe-{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * PROBE_BYTES)
                f.flush()
                os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    except OSError as e:
        raise StoreError(f"cannot write to {what}: {_why(e)}") from None


def _why(e: OSError) -> str:
    known = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
             errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file size limit reached",
             errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
    return known.get(e.errno, e.strerror or str(e))


@contextlib.contextmanager
def creation_lock(uri: str):
    """Hold an exclusive lock on the SQLite store's folder (a no-op for other stores)."""
    db = sqlite_path(uri)
    if db is None or os.name != "posix":
        yield
        return
    import fcntl

    folder = db.parent if str(db.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def describe_failure(exc: BaseException, uri: str, artifact_location: str | None = None) -> str | None:
    """One line for an exception raised while writing to the store or its artifacts (a full or read-only
    disk, a locked database), naming the full path; None if it is not such a failure. The first write that
    failed is named (a file the disk had no room for), before any the failure caused."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    db = sqlite_path(uri)
    for e in reversed(chain):  # the root cause first
        if isinstance(e, OSError) and e.errno in DISK_ERRORS:
            where = e.filename2 or e.filename or artifact_location or (db.parent if db else uri)
            return f"cannot write {os.path.abspath(str(where))}: {_why(e)}"
    for e in chain:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        lowered = text.lower()
        if type(e).__name__ == "OperationalError" or "disk is full" in lowered or "readonly database" in lowered:
            where = f"the tracking store {db.resolve() if db else uri}"
            for needle, why in (("readonly", "the database is read-only"), ("read-only", "the database is read-only"),
                                ("disk is full", "no space left on the device"), ("no space", "no space left on the device"),
                                ("locked", "the database is locked by another process"),
                                ("unable to open", "the database file cannot be opened")):
                if needle in lowered:
                    return f"cannot write to {where}: {why}"
            return f"{where} failed: {text[:200]}"
    return None


def is_disk_full(exc: BaseException | None) -> bool:
    """True if `exc` (or what caused it) is a full disk or quota."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "disk is full" in str(exc).lower() or "no space left" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


DISK_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM)
RESERVE_BYTES = 1 << 20  # room to end a run FAILED (and remove a half-written model) on a full disk
_reserves: list[Path] = []


@contextlib.contextmanager
def reserve(uri: str, artifact_location: str | None = None):
    """Hold RESERVE_BYTES in a file beside a local SQLite store while the block runs; removed at the end.
    `release_reserve` frees it early, when the disk fills. Other stores: nothing to hold."""
    db = sqlite_path(uri)
    path = None
    if db is not None:
        folder = db.parent if str(db.parent) else Path(".")
        path = folder / f"{RESERVE_PREFIX}{os.getpid()}"
        try:
            with open(path, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
            _reserves.append(path)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
            path = None
    try:
        yield
    finally:
        release_reserve()


RESERVE_PREFIX = ".seqlab-reserve-"


def release_reserve() -> bool:
    """Free the space `reserve` holds (idempotent); True if some was freed."""
    freed = False
    while _reserves:
        with contextlib.suppress(OSError):
            _reserves.pop().unlink()
            freed = True
    return freed


def release_dead_reserves(folder: Path, alive) -> int:
    """Remove the reserve files that processes which are gone left beside a store (`alive(pid) -> bool`)."""
    removed = 0
    for path in folder.glob(f"{RESERVE_PREFIX}*"):
        pid = path.name[len(RESERVE_PREFIX):]
        if pid.isdigit() and not alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def copy_empty_store(path: Path) -> Path:
    """Write at `path` (unless it exists) a copy of an empty MLflow SQLite store that MLflow created and
    migrated once per MLflow version and user, under the temporary folder: creating a store runs every schema
    migration, 5-10 s each time. For tests and benchmarks that create many stores; returns `path`."""
    import fcntl
    import shutil
    import tempfile

    import mlflow

    if path.exists():
        return path
    folder = Path(tempfile.gettempdir()) / f"seqlab-empty-store-{mlflow.__version__}-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    template = folder / "mlflow.db"
    with open(folder / "lock", "w") as lock:  # pytest-xdist workers and parallel processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            partial = folder / "partial.db"
            partial.unlink(missing_ok=True)
            SqlAlchemyStore(f"sqlite:///{partial}", str(folder / "mlruns")).engine.dispose()  # creates, migrates
            partial.rename(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return path
