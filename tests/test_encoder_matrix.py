"""Every encoder x head, and every character option x head, builds, trains a step, reloads identically and
predicts through the pyfunc: 8 combinations cover every pair of those (all 24 took 4.5 minutes)."""

import keras
import mlflow
import numpy as np
import pytest

from omegaconf import OmegaConf

from seqlab.config.schema import WordsConfig
from seqlab.data import embedded
from seqlab.data.schemes import to_iob2
from seqlab.model import build_tagger
from seqlab.tracking import save_tagger
from seqlab.task import TaggingTask

ENCODERS = {
    "bilstm": dict(name="bilstm", layers=2, units=4, dropout=0.1, recurrent_dropout=0.0),
    "bigru": dict(name="bigru", layers=1, units=4, dropout=0.1, recurrent_dropout=0.0),
    "cnn": dict(name="cnn", layers=2, filters=6, kernel_size=3, dropout=0.1, residual=True),
    "idcnn": dict(name="idcnn", filters=6, kernel_size=3, dilations=[1, 2], blocks=2, dropout=0.1),
}
WORDS = dict(dim=8, dropout=0.1, word_dropout=0.1, char_dim=4, char_filters=5, char_kernel=3, char_units=3,
             casing=True, casing_dim=3)


@pytest.fixture(scope="module")
def data():
    sentences = embedded.read_embedded_wnut16()[:48]
    task = TaggingTask.build("ner", sentences, OmegaConf.structured(WordsConfig), "iob2")
    x = task.encode_tokens([s.tokens for s in sentences[:16]])
    y = task.encode_tags([s.tags for s in sentences[:16]], x["words"].shape[1])
    return sentences, task, x, y


CHARS = ["none", "cnn", "lstm"]
# encoder i with head j gets CHARS[(i + 2j) % 3]: each head meets every character option, each encoder two of them.
COMBINATIONS = [(encoder, CHARS[(i + 2 * j) % 3], head)
                for j, head in enumerate(["softmax", "crf"]) for i, encoder in enumerate(ENCODERS)]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("encoder, chars, head", COMBINATIONS)
def test_combination(tmp_path, data, encoder, chars, head):
    sentences, task, x, y = data
    keras.backend.clear_session()
    model = build_tagger(task, {**WORDS, "chars": chars}, ENCODERS[encoder], {"name": head, "constrained": True})
    model.compile(optimizer="adam")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)

    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    # The same emission scores, called eagerly (tracing Keras' predict function twice tested no more).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(again(x)), atol=1e-6)

    save_tagger(model, str(tmp_path / "pyfunc"))
    tokens = [list(s.tokens) for s in sentences[16:24]]
    tags = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc")).predict(tokens)
    assert [len(t) for t in tags] == [len(s) for s in tokens]
    assert {t for seq in tags for t in seq} <= set(task.labels)
    expected = model.tag_ids(tokens)  # int32 [n] per sentence, the trained model's own decoder
    # The pyfunc returns valid IOB2: a stray I- after O (softmax head) becomes B-, as conlleval reads it.
    assert tags == [to_iob2([task.labels[i] for i in row]) for row in expected]
    assert tags == again.tag(tokens)  # the reloaded .keras file alone tags the same
