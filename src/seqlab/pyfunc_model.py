"""The logged MLflow model: token lists in, tag lists out.

`mlflow.pyfunc.load_model(uri).predict([["EU", "rejects"], ["Paris"]])`
returns `[["B-org", "O"], ["B-loc"]]`-style lists (IOB2 for span tasks, the
tags themselves for pos). The wrapper only loads the tagger's .keras file,
which holds the task (vocabulary, labels, schemes), and calls `tag`; seqlab's
own code travels inside the logged model, so nothing else is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile

import mlflow
import mlflow.pyfunc

import seqlab


class TaggerPyfunc(mlflow.pyfunc.PythonModel):
    """Loads `tagger.keras` and calls its `tag`.

    `tagger`: the model just saved, still in memory, for MLflow's run of the input example while
    logging (one copy fewer in memory); it is never pickled, so a loaded model reads its file.
    """

    def __init__(self, tagger=None):
        self.tagger = tagger

    def load_context(self, context) -> None:
        if getattr(self, "tagger", None) is not None:
            return
        from seqlab.quiet import import_backend

        import_backend()  # TensorFlow without its C++ start-up lines, or JAX / PyTorch
        import keras

        seqlab.register_keras_objects()
        self.tagger = keras.saving.load_model(context.artifacts["tagger"], compile=False)

    def predict(self, context, model_input: list[list[str]], params=None) -> list[list[str]]:
        return self.tagger.tag([list(s) for s in model_input])

    def __getstate__(self):
        """Pickle without the loaded model: MLflow runs the input example through it before saving."""
        state = self.__dict__.copy()
        state.pop("tagger", None)
        return state


BACKEND_PACKAGES = {"tensorflow": ["tensorflow"], "jax": ["jax", "jaxlib"], "torch": ["torch"]}


def pip_requirements() -> list[str]:
    """Pinned to what trained the model (its Keras backend's packages included): MLflow's inference
    cannot see seqlab's custom layers. The .keras file itself loads on any backend."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    import keras

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:  # e.g. tensorflow-cpu provides the tensorflow module
            return importlib.import_module(name).__version__

    packages = [*BACKEND_PACKAGES.get(keras.backend.backend(), []), "keras", "numpy", "mlflow"]
    return [f"{name}=={installed(name)}" for name in packages]


@contextlib.contextmanager
def _model_parts(model):
    """The keyword arguments shared by save_model and log_model, with the .keras file in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = os.path.join(tmp, "tagger.keras")
        model.save(keras_path)
        quiet = logging.Filter()
        # The wrapper holds no state of its own, so MLflow's warning about pickling it is noise.
        quiet.filter = lambda record: "CloudPickle" not in record.getMessage()
        logger = logging.getLogger("mlflow.pyfunc")
        logger.addFilter(quiet)
        try:
            yield dict(
                python_model=TaggerPyfunc(model),
                artifacts={"tagger": keras_path},
                code_paths=[os.path.dirname(seqlab.__file__)],
                pip_requirements=pip_requirements(),
            )
        finally:
            logger.removeFilter(quiet)


def log_tagger(model, name: str = "model", input_example=None, registered_model_name: str | None = None):
    """Log the tagger as a pyfunc model under `name` in the active run; returns ModelInfo.

    `input_example`: token lists (shown in the UI, and the serving payload's shape);
    `registered_model_name`: also register it in the model registry under that name.
    """
    with _model_parts(model) as parts:
        return mlflow.pyfunc.log_model(name=name, input_example=input_example,
                                       registered_model_name=registered_model_name or None, **parts)


def save_tagger(model, path: str) -> None:
    """Save the tagger as a pyfunc model in a local folder (no tracking server needed)."""
    with _model_parts(model) as parts:
        mlflow.pyfunc.save_model(path, **parts)
