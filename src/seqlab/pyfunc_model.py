"""The logged MLflow model: token lists in, IOB2 tags out.

`mlflow.pyfunc.load_model(uri).predict([["EU", "rejects"], ["Paris"]])`
returns `[["B-org", "O"], ["B-loc"]]`-style lists. The Keras model (.keras),
the vocabulary and the label names, and seqlab's own code travel inside the
logged model, so nothing else is needed to reload it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile

import mlflow
import mlflow.pyfunc

import seqlab


class TaggerPyfunc(mlflow.pyfunc.PythonModel):
    """Pads each batch, runs the tagger and its decoder, strips the padding."""

    def load_context(self, context) -> None:
        from seqlab.quiet import import_tensorflow

        import_tensorflow()  # without its C++ start-up lines
        import keras

        import seqlab.model  # noqa: F401  registers the custom layers with Keras
        from seqlab.data.vocab import Vocabulary
        from seqlab.inference import TagPredictor

        model = keras.saving.load_model(context.artifacts["tagger"], compile=False)
        with open(context.artifacts["vocabulary"], encoding="utf-8") as f:
            vocab = Vocabulary.from_json(f.read())
        with open(context.artifacts["meta"], encoding="utf-8") as f:
            meta = json.load(f)
        self.predictor = TagPredictor(model, vocab, train_scheme=meta["train_scheme"])

    def predict(self, context, model_input: list[list[str]], params=None) -> list[list[str]]:
        return self.predictor.predict([list(s) for s in model_input])

    def __getstate__(self):
        """Pickle without the loaded model: MLflow runs the input example through it before saving."""
        state = self.__dict__.copy()
        state.pop("predictor", None)
        return state


def pip_requirements() -> list[str]:
    """Pinned to what trained the model: MLflow's inference cannot see seqlab's custom layers."""
    import keras
    import numpy
    import tensorflow

    return [
        f"tensorflow=={tensorflow.__version__}",
        f"keras=={keras.__version__}",
        f"numpy=={numpy.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


@contextlib.contextmanager
def _model_parts(model, vocab, train_scheme: str):
    """The keyword arguments shared by save_model and log_model, with files in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = os.path.join(tmp, "tagger.keras")
        model.save(keras_path)
        vocab_path = os.path.join(tmp, "vocabulary.json")
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write(vocab.to_json())
        meta_path = os.path.join(tmp, "meta.json")
        with open(meta_path, "w", encoding="utf-8") as f:
            json.dump({"train_scheme": train_scheme, "labels": vocab.labels}, f)
        quiet = logging.Filter()
        # The wrapper holds no state of its own, so MLflow's warning about pickling it is noise.
        quiet.filter = lambda record: "CloudPickle" not in record.getMessage()
        logger = logging.getLogger("mlflow.pyfunc")
        logger.addFilter(quiet)
        try:
            yield dict(
                python_model=TaggerPyfunc(),
                artifacts={"tagger": keras_path, "vocabulary": vocab_path, "meta": meta_path},
                code_paths=[os.path.dirname(seqlab.__file__)],
                pip_requirements=pip_requirements(),
            )
        finally:
            logger.removeFilter(quiet)


def log_tagger(model, vocab, train_scheme: str = "iob2", name: str = "model", input_example=None,
               registered_model_name: str | None = None):
    """Log the tagger as a pyfunc model under `name` in the active run; returns ModelInfo.

    `input_example`: token lists (shown in the UI, and the serving payload's shape);
    `registered_model_name`: also register it in the model registry under that name.
    """
    with _model_parts(model, vocab, train_scheme) as parts:
        return mlflow.pyfunc.log_model(name=name, input_example=input_example,
                                       registered_model_name=registered_model_name or None, **parts)


def save_tagger(model, vocab, path: str, train_scheme: str = "iob2") -> None:
    """Save the tagger as a pyfunc model in a local folder (no tracking server needed)."""
    with _model_parts(model, vocab, train_scheme) as parts:
        mlflow.pyfunc.save_model(path, **parts)
