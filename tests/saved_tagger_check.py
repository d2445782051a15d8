"""Run by tests/test_backends.py in a child on JAX or PyTorch (not collected on its own: the name does not start
with test_): a tagger saved on TensorFlow loads on this backend and gives the same emissions and tags. It fails,
rather than skips, without SEQLAB_SAVED_TAGGER: it is only ever run on purpose."""

import json
import os
from pathlib import Path

import keras
import numpy as np

FOLDER = os.environ.get("SEQLAB_SAVED_TAGGER")


def test_a_tagger_saved_on_tensorflow_loads_and_predicts_the_same_here():
    import seqlab

    assert FOLDER, "SEQLAB_SAVED_TAGGER must name the folder tests/test_backends.py saved the tagger in"
    folder = Path(FOLDER)
    model = seqlab.load_tagger(folder / "tagger.keras")
    saved = json.loads((folder / "tagged.json").read_text())
    inputs = model.task.encode_tokens([s for s in saved["sentences"] if s])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs)), np.load(folder / "emissions.npy"), atol=1e-4)
    assert model.tag(saved["sentences"]) == saved["tags"]
