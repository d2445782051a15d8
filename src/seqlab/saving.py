"""Loading a saved tagger, and the one place that makes seqlab's Keras classes known to Keras.

Every class a `.keras` file may name carries Keras' `@keras.saving.register_keras_serializable(package="seqlab")`
at its definition (TaggingTask, which imports no Keras, is registered here and by the Tagger that holds it), so it is saved under the name `seqlab><ClassName>`; it is registered when its module
is imported. `register_keras_objects()` imports every module that defines one (MODULES, checked by a
test against the source), so any `.keras` file of seqlab's loads:

    import seqlab
    tagger = seqlab.load_tagger("tagger.keras")     # TensorFlow starts quietly; classes registered
    tagger.tag([["EU", "rejects", "German", "call"]])

or, with Keras' own loader:

    import keras, seqlab
    seqlab.register_keras_objects()
    tagger = keras.saving.load_model("tagger.keras", compile=False)

The names are those of seqlab 0.2, so its files still load (tests/fixtures/v0.2).
"""

from __future__ import annotations

import importlib
import os
import zipfile

from seqlab.errors import SeqlabError

MODULES = (  # every module that defines a class a .keras file may name (TaggingTask: register_keras_objects)
    "seqlab.crf.layer",  # CRF
    "seqlab.model.features",  # WordFeatures, CharCNN, CharLSTM
    "seqlab.model.encoders",  # RNNEncoder, CNNEncoder, IDCNNEncoder
    "seqlab.model.heads",  # SoftmaxHead, CRFHead
    "seqlab.model.transformer",  # TransformerEncoder
    "seqlab.model.tagger",  # Tagger
    "seqlab.training.optimizers",  # WarmupLinearDecay
)


class ModelFileError(SeqlabError):
    """A .keras file that is missing, truncated or not a tagger."""


def register_keras_objects() -> None:
    """Register every seqlab class a saved .keras file may name (imports Keras and the backend)."""
    import keras

    from seqlab.task import TaggingTask

    keras.saving.register_keras_serializable(package="seqlab")(TaggingTask)  # the task layer imports no Keras
    for name in MODULES:
        importlib.import_module(name)


def load_tagger(path: str | os.PathLike):
    """The Tagger saved at `path` (a .keras file), ready to `tag`; TensorFlow's start-up lines filtered.
    A missing, truncated or corrupted file is one ModelFileError line that says so."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a complete .keras file ({os.path.getsize(path)} bytes; truncated or "
                             "corrupted, or not a Keras model): save or download it again")
    from seqlab.runtime.quiet import import_backend

    import_backend()
    import keras

    register_keras_objects()
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
        if broken is not None:
            raise ModelFileError(f"{path}: the member {broken} of this .keras file is corrupted: save or download it again")
        return keras.saving.load_model(path, compile=False)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ModelFileError(f"{path}: not a complete .keras file ({type(e).__name__}: {e}): save or download it "
                             "again") from None
