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
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from dataclasses import dataclass


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


def find_orphans(client, experiment_ids: list[str], older_than_hours: float | None = None,
                 run_ids: tuple[str, ...] = ()) -> list[Orphan]:
    """The RUNNING runs of `experiment_ids` whose process is provably gone, or that match the options."""
    host = socket.gethostname()
    now_ms = time.time() * 1000
    names = {e: client.get_experiment(e).name for e in experiment_ids}
    found = []
    for run in client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=50000):
        tags, rid = run.data.tags, run.info.run_id
        why = None
        if rid in run_ids:
            why = "named with --run-id"
        elif tags.get("seqlab.host") == host and tags.get("seqlab.pid", "").isdigit() \
                and int(tags["seqlab.pid"]) != os.getpid() and not pid_alive(int(tags["seqlab.pid"])):
            why = f"its process {tags['seqlab.pid']} on {host} has ended"
        elif older_than_hours is not None and now_ms - run.info.start_time > older_than_hours * 3600_000:
            why = f"started more than {older_than_hours:g} h ago"
        if why:
            found.append(Orphan(rid, run.info.run_name or "", names[run.info.experiment_id], why))
    return found


def mark_killed(client, orphans: list[Orphan]) -> None:
    for o in orphans:
        client.set_tag(o.run_id, "killed_by", f"experiments.cleanup: {o.why}")
        client.set_terminated(o.run_id, status="KILLED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.cleanup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
                        help="tracking store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", action="append", help="experiment name (repeatable; default: all)")
    parser.add_argument("--older-than", type=float, metavar="HOURS",
                        help="also mark runs of any host that started more than HOURS ago")
    parser.add_argument("--run-id", action="append", default=[], help="mark this run (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, change nothing")
    args = parser.parse_args(argv)

    from seqlab.store import StoreError, check_store

    try:
        check_store(args.uri)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.uri)
    if args.experiment:
        found = [client.get_experiment_by_name(n) for n in args.experiment]
        missing = [n for n, e in zip(args.experiment, found) if e is None]
        if missing:
            print(f"error: no experiment named {', '.join(missing)} in {args.uri}", file=sys.stderr)
            return 2
        ids = [e.experiment_id for e in found]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    orphans = find_orphans(client, ids, args.older_than, tuple(args.run_id)) if ids else []
    for o in orphans:
        print(f"{'would mark' if args.dry_run else 'marked'} KILLED  {o.run_id}  {o.experiment}/{o.run_name}  ({o.why})")
    if not args.dry_run:
        mark_killed(client, orphans)
    print(f"{len(orphans)} run(s) {'to mark' if args.dry_run else 'marked'} KILLED in {args.uri}")
    return 0
