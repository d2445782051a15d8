"""Train and evaluate one tagger per Hydra job; results go to MLflow.

    python -m experiments.run +encoder=bilstm
    python -m experiments.run -m +encoder=bilstm,bigru,cnn head=softmax,crf

Exit statuses: seqlab.jobs.entry.
"""

import sys

import hydra
from omegaconf import DictConfig

from seqlab.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from seqlab.jobs.entry import run_job  # imports TensorFlow only when a job really runs

    return run_job(cfg)


if __name__ == "__main__":
    from seqlab.jobs.entry import finish_command

    sys.exit(finish_command(main))
