"""Tracking: every MLflow call of seqlab (a test checks that no other package imports mlflow).

    runs.py          experiments, runs and what they record
    store.py         the store, checked before anything heavy runs, and kept usable on a full disk
    pyfunc_model.py  the logged model: token lists in, tag lists out
    serving.py       limits and one-line errors under `mlflow models serve`
    cleanup.py       runs left RUNNING by dead processes

`from seqlab import tracking` stays light: the entry point checks the store (tracking.store) before
TensorFlow is imported, so `tracking.<name>` loads runs.py and pyfunc_model.py on first use.
"""

from __future__ import annotations

import importlib

_FROM = {"log_tagger": "pyfunc_model", "save_tagger": "pyfunc_model", "tagger_file": "pyfunc_model"}
SUBMODULES = ("runs", "store", "pyfunc_model", "serving", "cleanup")


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    if name in SUBMODULES:
        return importlib.import_module(f"seqlab.tracking.{name}")
    module = importlib.import_module(f"seqlab.tracking.{_FROM.get(name, 'runs')}")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'seqlab.tracking' has no attribute {name!r}") from None
