"""The MLflow tracking store, checked before anything heavy runs.

`check_store` answers in seconds, before the data is read or TensorFlow is
imported: a tracking server that cannot be reached, or a SQLite store (or
artifact folder) that cannot be written, is one `StoreError` line.
`creation_lock` serialises the creation of a new SQLite store: MLflow builds
its schema with no lock of its own, and N processes starting together on a
store that does not exist yet otherwise crash on `table ... already exists`.

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


def check_store(uri: str, artifact_location: str | None = None) -> None:
    """Raise StoreError in one line when the store at `uri` cannot be used."""
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


def describe_failure(exc: BaseException, uri: str) -> str | None:
    """One line for an exception raised while writing to the store, or None if it is not a store failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if type(exc).__name__ == "OperationalError" or isinstance(exc, OSError) and exc.errno in (
                errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG):
            lowered = text.lower()
            for needle, why in (("readonly", "the database is read-only"), ("read-only", "the database is read-only"),
                                ("disk is full", "the disk is full"), ("no space", "no space left on the device"),
                                ("locked", "the database is locked by another process"),
                                ("unable to open", "the database file cannot be opened")):
                if needle in lowered:
                    return f"cannot write to the tracking store {uri}: {why}"
            if isinstance(exc, OSError):
                return f"cannot write to the tracking store {uri}: {_why(exc)}"
            return f"the tracking store {uri} failed: {text[:200]}"
        exc = exc.__cause__ or exc.__context__
    return None
