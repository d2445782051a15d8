#!/usr/bin/env bash
# Train seqlab's best preset on CoNLL-2003 without pretrained vectors, to early stopping or
# trainer.max_minutes (55 minutes of training), and print the test F1.
#
#   bash scripts/reproduce_conll2003.sh [DATA_ROOT]      # DATA_ROOT holds conll2003/{train,dev,test}.txt
#                                                         # (default: ../shared/data beside the clone)
# Interrupted (Ctrl-C, a closed laptop, a killed job)? Run the same command again: it resumes from
# the last finished epoch in checkpoints/conll2003_no_vectors, in the same MLflow run.
# Extra Hydra overrides go after the data root, e.g. trainer.max_minutes=120; CHECKPOINT=DIR moves the
# checkpoint folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-$(cd .. && pwd)/shared/data}"
shift || true
if [ ! -f "$root/conll2003/train.txt" ]; then
  echo "error: $root/conll2003/train.txt not found: pass the folder that holds conll2003/ as the first argument" >&2
  exit 2
fi
exec python -m experiments.run +experiment=conll2003_no_vectors "data.root=$root" \
  "trainer.checkpoint=${CHECKPOINT:-checkpoints/conll2003_no_vectors}" trainer.resume=true "$@"
