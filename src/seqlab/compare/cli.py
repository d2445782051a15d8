"""`python -m experiments.compare`: select runs, build the leaderboard, print it, write and log it."""

from __future__ import annotations

import argparse
import os
import sys

from seqlab.config.schema import default_tracking_uri
from seqlab.errors import SeqlabError


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m experiments.compare",
                                     description="Leaderboard with mean, std, n, min, max and p-values per group.")
    parser.add_argument("--uri", default=default_tracking_uri(),
                        help="tracking store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--sweep", help="a sweep parent's run id, or its `sweep` tag (the Hydra sweep directory)")
    parser.add_argument("--experiment", action="append", help="experiment name (repeatable; default: seqlab)")
    parser.add_argument("--filter", default="", help="an MLflow filter string, e.g. \"tags.encoder = 'cnn'\"")
    parser.add_argument("--by", required=True, help="comma-separated keys to group by: head, encoder, words.chars, ...")
    parser.add_argument("--metric", help="the metric to compare (default: the runs' task's test metric: "
                        "test_entity_f1, test_chunk_f1 or test_accuracy)")
    parser.add_argument("--lower-is-better", action="store_true",
                        help="the best group has the lowest mean (error rates such as test_invalid_transition_rate)")
    parser.add_argument("--per-type", action="store_true",
                        help="also compare each entity type's test F1 (test_f1_<TYPE>), group by group")
    parser.add_argument("--resamples", type=int, default=10000, help="shuffles of the paired randomisation test")
    parser.add_argument("--out", help="also write leaderboard.csv/.md/.png into this folder")
    parser.add_argument("--no-log", action="store_true", help="do not log the leaderboard to MLflow")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from seqlab.tracking.store import check_store

    try:
        check_store(args.uri)
        from seqlab import tracking
        from seqlab.compare import leaderboard

        client = tracking.client(args.uri)
        runs, parent_id = leaderboard.select_runs(client, args.sweep, args.experiment, args.filter)
        by = [k.strip() for k in args.by.split(",") if k.strip()]
        metric = args.metric = args.metric or leaderboard.task_metrics(runs)[1]
        board = leaderboard.build(client, runs, by, metric, args.resamples,
                                  higher_is_better=not args.lower_is_better)
        types = leaderboard.per_type(client, runs, by) if args.per_type else ""
    except SeqlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(board.markdown())
    if types:
        print(f"per type:\n{types}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        if types:
            with open(os.path.join(args.out, "leaderboard_per_type.md"), "w", encoding="utf-8") as f:
                f.write(types)
    if not args.no_log:
        target = parent_id or _comparison_run(client, runs, by, args)
        leaderboard.write_and_log(client, board, target, args.out)
        if parent_id is None:
            client.set_terminated(target, "FINISHED")
        print(f"logged leaderboard.csv, leaderboard.md and leaderboard.png on MLflow run {target}")
    elif args.out:
        leaderboard.write_and_log(_NoLog(), board, "", args.out)
    return 0


def _comparison_run(client, runs, by, args) -> str:
    """A new run that holds a comparison of runs that are not one sweep."""
    experiment_id = runs[0].info.experiment_id
    run = client.create_run(experiment_id, run_name=f"compare by {','.join(by)}",
                            tags={"seqlab.comparison": ",".join(by), "compare.filter": args.filter[:500],
                                  "compare.metric": args.metric})
    client.log_text(run.info.run_id, "\n".join(r.info.run_id for r in runs) + "\n", "compared_runs.txt")
    return run.info.run_id


class _NoLog:
    def log_artifact(self, run_id, path):
        pass
