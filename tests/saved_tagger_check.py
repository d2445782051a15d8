"""Run by tests/test_backends.py in a child on JAX or PyTorch (not collected on its own: the name does not start
with test_): a tagger saved on TensorFlow loads on this backend and gives the same emissions and tags."""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

FOLDER = os.environ.get("SEQLAB_SAVED_TAGGER")


@pytest.mark.skipif(not FOLDER, reason="SEQLAB_SAVED_TAGGER names no folder (tests/test_backends.py sets it)")
def test_a_tagger_saved_on_tensorflow_loads_and_predicts_the_same_here():
    import seqlab

    folder = Path(FOLDER)
    model = seqlab.load_tagger(folder / "tagger.keras")
    saved = json.loads((folder / "tagged.json").read_text())
    inputs = model.task.encode_tokens([s for s in saved["sentences"] if s])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs)), np.load(folder / "emissions.npy"), atol=1e-4)
    assert model.tag(saved["sentences"]) == saved["tags"]
