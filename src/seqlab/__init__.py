"""seqlab: experiments and sweeps for neural sequence taggers.

Layers, each a folder, imported one way only (tests/test_layers.py checks it):

    runtime -> config -> data -> task -> crf -> model -> training -> evaluation -> tracking -> compare -> jobs

`seqlab.jobs.pipeline.train(cfg)` runs one experiment through them in that order. A saved tagger
needs nothing but this package:

    import seqlab
    tagger = seqlab.load_tagger("tagger.keras")
    tagger.tag([["EU", "rejects", "German", "call"]])

`import seqlab` stays light (no TensorFlow, so `--help` answers at once).
"""

from __future__ import annotations

import os

__version__ = "0.3.0"

# MLflow's usage telemetry off, unless the user set it: its start-up thread, when it cannot reach its server
# (offline, firewalled), removes an environment variable while a request of the run is reading the
# environment, and that request fails with KeyError('_MLFLOW_TELEMETRY_SESSION_ID') (seen: 1 log_batch lost
# in about 50 client processes of scripts/bench_scaling.py store-load).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def load_tagger(path):
    """The tagger saved in a .keras file, ready to `tag` raw tokens (seqlab.saving.load_tagger)."""
    from seqlab.saving import load_tagger as load

    return load(path)


def register_keras_objects() -> None:
    """Make seqlab's Keras classes known to `keras.saving.load_model` (seqlab.saving)."""
    from seqlab.saving import register_keras_objects as register

    register()
