"""Training: length-bucketed batches (batches.py), the fit loop with the dev score and early stopping
(loop.py), the optimizer (optimizers.py), and checkpoints a run resumes from (checkpoint.py)."""

from seqlab.training.batches import BucketedBatches
from seqlab.training.checkpoint import Checkpoint
from seqlab.training.loop import (BestEpoch, DevScore, FitOptions, Outcome, Stage, StopState, TimeLimit, fit,
                                  show_progress)
from seqlab.training.optimizers import WarmupLinearDecay, inverse_time_decay, make_optimizer

__all__ = ["BestEpoch", "BucketedBatches", "Checkpoint", "DevScore", "FitOptions", "Outcome", "Stage", "StopState",
           "TimeLimit", "WarmupLinearDecay", "fit", "inverse_time_decay", "make_optimizer", "show_progress"]
