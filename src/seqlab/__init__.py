"""seqlab: experiments and sweeps for neural sequence taggers.

Stages, imported one way only:
config (config, choices) -> data -> model (crf, model) -> task -> training
-> evaluation -> tracking. `seqlab.pipeline.train(cfg)` runs them in that order.

A saved tagger needs nothing but this package:

    import keras, seqlab
    tagger = keras.saving.load_model("tagger.keras")
    tagger.tag([["EU", "rejects", "German", "call"]])

`import seqlab` stays light (no TensorFlow, so `--help` answers at once); it
registers seqlab's Keras classes (the tagger, its task, layers and heads) as
soon as Keras is imported, before or after this package.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.2.0"

# MLflow's usage telemetry off, unless the user set it: its start-up thread, when it cannot reach its server
# (offline, firewalled), removes an environment variable while a request of the run is reading the
# environment, and that request fails with KeyError('_MLFLOW_TELEMETRY_SESSION_ID') (seen: 1 log_batch lost
# in about 50 client processes of scripts/bench_scaling.py store-load).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def register_keras_objects() -> None:
    """Register every seqlab class a saved .keras file may name (imports Keras)."""
    import seqlab.model  # noqa: F401  the tagger, its layers and heads
    import seqlab.task  # noqa: F401  the task saved inside a tagger


_deferred = False  # Keras was first imported by seqlab.crf, which registers everything once it is complete


def register_if_deferred() -> None:
    """Called at the end of seqlab.crf's import: the registration Keras' import had to put off."""
    global _deferred
    if _deferred:
        _deferred = False
        register_keras_objects()


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False)


class _RegisterWhenKerasLoads(importlib.abc.MetaPathFinder):
    """Runs `register_keras_objects` right after the first `import keras` has finished."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once; find the real spec without us
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            global _deferred
            exec_module(module)
            if _initializing("seqlab.crf"):  # the heads import seqlab.crf's CRF, which does not exist yet
                _deferred = True
                return
            register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    register_keras_objects()
elif not any(isinstance(f, _RegisterWhenKerasLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())
