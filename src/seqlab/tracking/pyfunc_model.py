"""The logged MLflow model: token lists in, tag lists out.

`mlflow.pyfunc.load_model(uri).predict([["EU", "rejects"], ["Paris"]])` returns
`[["B-org", "O"], ["B-loc"]]`-style lists (IOB2 for span tasks, the tags themselves
for pos). Its signature declares two params: `{"scores": true}` adds each token's
probability and each entity's confidence, `{"nbest": k}` the k most probable tag
sequences (seqlab.model.confidence). The wrapper only loads the tagger's .keras file, which holds the task
(vocabulary, labels, schemes), and calls `tag`; seqlab's own code travels
inside the logged model, so nothing else is needed. Under `mlflow models serve`
requests are limited in size and errors are one line (seqlab.tracking.serving).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import mlflow
import mlflow.pyfunc

from seqlab.tracking import serving
from seqlab.tracking.store import StoreError, is_disk_full, release_reserve

log = logging.getLogger("seqlab")
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # src/seqlab: travels inside the model


PARAMS = {"scores": False, "nbest": 0}  # the pyfunc's params and their defaults, declared in its signature


class TaggerPyfunc(mlflow.pyfunc.PythonModel):
    """Loads `tagger.keras` and calls its `tag`.

    `tagger`: the model just saved, still in memory, for MLflow's run of the input example while
    logging (one copy fewer in memory); it is never pickled, so a loaded model reads its file.
    """

    def __init__(self, tagger=None):
        self.tagger = tagger

    def load_context(self, context) -> None:
        self.limits = serving.Limits.from_environment()
        serving.guard_scoring_server(self.limits)  # only inside `mlflow models serve`
        if getattr(self, "tagger", None) is not None:
            return
        from seqlab.saving import load_tagger

        self.tagger = load_tagger(context.artifacts["tagger"])

    def predict(self, context, model_input: list[list[str]], params=None):
        """Token lists in, tag lists out; with params {"scores": true} and/or {"nbest": k}, one dict per sentence
        (Tagger.tag). MLflow reads the input's schema from the type hint, the params from the input example."""
        sentences = [list(s) for s in model_input]
        if serving.in_scoring_server():
            serving.check_request(sentences, getattr(self, "limits", serving.Limits()))
        params = params or {}
        return self.tagger.tag(sentences, scores=bool(params.get("scores", False)), nbest=int(params.get("nbest") or 0))

    def __getstate__(self):
        """Pickle without the loaded model: MLflow runs the input example through it before saving."""
        state = self.__dict__.copy()
        state.pop("tagger", None)
        return state


BACKEND_PACKAGES = {"tensorflow": ["tensorflow"], "jax": ["jax", "jaxlib"], "torch": ["torch"]}


PRETRAINED_PACKAGES = ["keras-hub", "tensorflow-text", "safetensors"]  # a transformer encoder's backbone classes


def pip_requirements(model=None) -> list[str]:
    """Pinned to what trained the model (its Keras backend's packages included, and keras-hub's for a
    transformer encoder): MLflow's inference cannot see seqlab's custom layers. The .keras file itself loads
    on any backend."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    import keras

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:  # e.g. tensorflow-cpu provides the tensorflow module
            return importlib.import_module(name).__version__

    packages = [*BACKEND_PACKAGES.get(keras.backend.backend(), []), "keras", "numpy", "mlflow"]
    if getattr(model, "reads_inputs", False):
        packages += PRETRAINED_PACKAGES
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
                code_paths=[PACKAGE],
                pip_requirements=pip_requirements(model),
            )
        finally:
            logger.removeFilter(quiet)


def log_tagger(model, name: str = "model", input_example=None, registered_model_name: str | None = None):
    """Log the tagger as a pyfunc model under `name` in the active run; returns ModelInfo.

    `input_example`: token lists (shown in the UI, and the serving payload's shape);
    `registered_model_name`: also register it in the model registry under that name.
    A model that cannot be logged whole (a full disk) leaves no record and no files behind.
    """
    run_id = mlflow.active_run().info.run_id
    before = _logged_models(run_id)
    try:
        with _model_parts(model) as parts:
            example = None if input_example is None else (input_example, PARAMS)  # declares the params
            return mlflow.pyfunc.log_model(name=name, input_example=example,
                                           registered_model_name=registered_model_name or None, **parts)
    except BaseException as e:
        if is_disk_full(e):
            release_reserve()  # room to remove what was half-written
        for logged in _logged_models(run_id):
            if logged.model_id not in {m.model_id for m in before}:
                _remove_model(logged)
        raise


def _logged_models(run_id: str) -> list:
    client = mlflow.tracking.MlflowClient()
    try:
        experiment_id = client.get_run(run_id).info.experiment_id
        return client.search_logged_models(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")
    except Exception:  # noqa: BLE001 - best effort: the store may be what failed
        return []


def _remove_model(logged) -> None:
    """Delete a logged model whose files did not all arrive: its files (a local artifact store) and its record."""
    location = urllib.parse.urlparse(logged.artifact_location)
    if location.scheme in ("", "file"):
        folder = urllib.parse.unquote(location.path)
        shutil.rmtree(folder.rsplit("/artifacts", 1)[0] if folder.endswith("/artifacts") else folder, ignore_errors=True)
    with contextlib.suppress(Exception):
        mlflow.tracking.MlflowClient().delete_logged_model(logged.model_id)
    log.info("removed the half-logged model %s", logged.model_id)


def save_tagger(model, path: str) -> None:
    """Save the tagger as a pyfunc model in a local folder (no tracking server needed)."""
    with _model_parts(model) as parts:
        mlflow.pyfunc.save_model(path, **parts)


def tagger_file(model_uri: str, dst: str, tracking_uri: str) -> str:
    """The `tagger.keras` of a logged model (runs:/<id>/<name>, models:/<name>@champion) in the store
    `tracking_uri`, downloaded into `dst`. A URI that names no seqlab model is one StoreError line."""
    mlflow.set_tracking_uri(tracking_uri)
    if model_uri.startswith("runs:/"):  # the file alone, not the model's environment files
        try:
            return mlflow.artifacts.download_artifacts(artifact_uri=f"{model_uri.rstrip('/')}/artifacts/tagger.keras",
                                                       dst_path=dst)
        except Exception:  # noqa: BLE001 - laid out otherwise: the whole model below
            pass
    try:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst)
    except Exception as e:  # noqa: BLE001 - MLflow's own errors are long: one line that names the URI
        raise StoreError(f"{model_uri}: cannot download the model ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300]})") from None
    found = sorted(Path(folder).rglob("tagger.keras"))
    if not found:
        raise StoreError(f"{model_uri}: no tagger.keras in this model: not a model that seqlab logged")
    return str(found[0])
