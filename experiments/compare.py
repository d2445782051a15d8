"""Leaderboard of runs from the MLflow store: mean, spread and significance per group.

    python -m experiments.compare --sweep <sweep parent run id> --by head
    python -m experiments.compare --experiment seqlab --by encoder,head --metric test_entity_f1
    python -m experiments.compare --filter "params.\`data.name\` = 'wnut16'" --by head --out reports/
    python -m experiments.compare --sweep <id> --by head.class_weights --per-type   # each entity type's F1 too

See seqlab.compare.leaderboard for the tests it runs.
"""

import sys

from seqlab.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
