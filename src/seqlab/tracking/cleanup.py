"""Find MLflow runs left RUNNING by a process that can no longer end them, and mark them KILLED.

A process killed with `kill -9` (or by the out-of-memory killer, or a power
loss) cannot mark its own run: it stays RUNNING for ever. Every seqlab run
carries the tags `seqlab.host` and `seqlab.pid`, so a run whose process was on
this host and is gone is provably orphaned. Runs of other hosts are only
touched with `--older-than`, and any run can be named with `--run-id`.

    python -m experiments.cleanup                        # this host's orphans, in the default store
    python -m experiments.cleanup --dry-run              # list them, change nothing
    python -m experiments.cleanup --older-than 24        # also runs of any host started > 24 h ago
    python -m experiments.cleanup --uri http://host:5000 --experiment seqlab

`--dry-run` writes nothing at all: a SQLite store is read with sqlite3 in read-only mode (MLflow's
client would create its default artifact folder), and a folder without a store stays empty. On a full
disk the reserve files that dead processes left beside the store (seqlab.tracking.store.reserve) are
removed first, which gives SQLite the room to record the changes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunRow:
    """What deciding about a RUNNING run needs."""

    run_id: str
    run_name: str
    experiment: str
    start_time: int  # milliseconds since the epoch
    tags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Orphan:
    run_id: str
    run_name: str
    experiment: str
    why: str


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def find_orphans(running: list[RunRow], older_than_hours: float | None = None, run_ids: tuple[str, ...] = ()) -> list[Orphan]:
    """The RUNNING runs whose process is provably gone, or that match the options."""
    host = socket.gethostname()
    now_ms = time.time() * 1000
    found = []
    for run in running:
        tags, why = run.tags, None
        if run.run_id in run_ids:
            why = "named with --run-id"
        elif tags.get("seqlab.host") == host and tags.get("seqlab.pid", "").isdigit() \
                and int(tags["seqlab.pid"]) != os.getpid() and not pid_alive(int(tags["seqlab.pid"])):
            why = f"its process {tags['seqlab.pid']} on {host} has ended"
        elif older_than_hours is not None and now_ms - run.start_time > older_than_hours * 3600_000:
            why = f"started more than {older_than_hours:g} h ago"
        if why:
            found.append(Orphan(run.run_id, run.run_name, run.experiment, why))
    return found


def running_from_sqlite(db: str, experiments: list[str] | None) -> list[RunRow]:
    """The RUNNING runs of a SQLite store, read in read-only mode (nothing is written, not even a journal)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as connection:
        names = dict(connection.execute("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'"))
        missing = [n for n in experiments or [] if n not in names.values()]
        if missing:
            raise LookupError(", ".join(missing))
        wanted = {str(i) for i, n in names.items() if not experiments or n in experiments}
        rows = connection.execute("SELECT run_uuid, name, experiment_id, start_time FROM runs "
                                  "WHERE status = 'RUNNING' AND lifecycle_stage = 'active'").fetchall()
        out = []
        for run_id, name, experiment_id, start in rows:
            if str(experiment_id) not in wanted:
                continue
            tags = dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
            out.append(RunRow(run_id, name or "", names[experiment_id], int(start or 0), tags))
        return out


def running_from_client(client, experiments: list[str] | None) -> list[RunRow]:
    """The RUNNING runs of any store, through MLflow's client."""
    if experiments:
        found = [client.get_experiment_by_name(n) for n in experiments]
        missing = [n for n, e in zip(experiments, found) if e is None]
        if missing:
            raise LookupError(", ".join(missing))
    else:
        found = client.search_experiments()
    names = {e.experiment_id: e.name for e in found}
    if not names:
        return []
    runs = client.search_runs(list(names), filter_string="attributes.status = 'RUNNING'", max_results=50000)
    return [RunRow(r.info.run_id, r.info.run_name or "", names[r.info.experiment_id], r.info.start_time, r.data.tags)
            for r in runs]


def mark_killed(client, orphans: list[Orphan]) -> None:
    for o in orphans:
        client.set_tag(o.run_id, "killed_by", f"experiments.cleanup: {o.why}")
        client.set_terminated(o.run_id, status="KILLED")


def main(argv: list[str] | None = None) -> int:
    from seqlab.config.schema import default_tracking_uri

    parser = argparse.ArgumentParser(prog="python -m experiments.cleanup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=default_tracking_uri(),
                        help="tracking store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", action="append", help="experiment name (repeatable; default: all)")
    parser.add_argument("--older-than", type=float, metavar="HOURS",
                        help="also mark runs of any host that started more than HOURS ago")
    parser.add_argument("--run-id", action="append", default=[], help="mark this run (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, change nothing")
    args = parser.parse_args(argv)

    from seqlab.tracking.store import StoreError, check_store, release_dead_reserves, sqlite_path

    db = sqlite_path(args.uri)
    if db is not None and not db.exists():
        print(f"no tracking store at {db.resolve()}: no run to mark")
        return 0
    try:
        if db is None:
            check_store(args.uri)  # a server: does it answer?
        if args.dry_run and db is not None:
            running = running_from_sqlite(str(db), args.experiment)
        else:
            if db is not None:
                release_dead_reserves(db.parent if str(db.parent) else Path("."), pid_alive)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(args.uri)
            running = running_from_client(client, args.experiment)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except LookupError as e:
        print(f"error: no experiment named {e} in {args.uri}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:
        print(f"error: cannot read the tracking store {args.uri}: {e}", file=sys.stderr)
        return 2
    orphans = find_orphans(running, args.older_than, tuple(args.run_id))
    for o in orphans:
        print(f"{'would mark' if args.dry_run else 'marked'} KILLED  {o.run_id}  {o.experiment}/{o.run_name}  ({o.why})")
    if not args.dry_run:
        mark_killed(client, orphans)
    print(f"{len(orphans)} run(s) {'to mark' if args.dry_run else 'marked'} KILLED in {args.uri}")
    return 0
