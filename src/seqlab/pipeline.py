"""`train(cfg)`: config -> data -> model -> training -> evaluation -> tracking, top to bottom."""

from __future__ import annotations

import logging
import time

import keras
import mlflow
from omegaconf import DictConfig, OmegaConf

from seqlab import tracking
from seqlab.data import load_corpus
from seqlab.data.corpus import content_digest, split_stats
from seqlab.data.sources import training_sentences, unseen_tags
from seqlab.data.vectors import embedding_matrix
from seqlab.data.vocab import Vocabulary
from seqlab.evaluation import entity_scores, tag_bigram_frequencies
from seqlab.heatmap import plot_transitions
from seqlab.inference import TagPredictor
from seqlab.model import build_tagger
from seqlab.pyfunc_model import log_tagger
from seqlab.training import BucketedBatches, DevF1EarlyStopping, fit, make_optimizer

log = logging.getLogger("seqlab")


def model_spec(cfg: DictConfig, vocab: Vocabulary) -> dict:
    """The plain-dict spec a Tagger is built from (and saved with)."""
    return {
        "num_words": len(vocab.words),
        "num_chars": len(vocab.chars),
        "labels": list(vocab.labels),
        "scheme": cfg.data.train_scheme,
        "words": OmegaConf.to_container(cfg.words, resolve=True),
        "encoder": OmegaConf.to_container(cfg.encoder, resolve=True),
        "head": OmegaConf.to_container(cfg.head, resolve=True),
    }


def train(cfg: DictConfig) -> dict[str, float]:
    """Train one tagger as `cfg` says, evaluate it on test, record it all in MLflow."""
    keras.backend.clear_session()  # nothing leaks from a previous job of the same process
    keras.utils.set_random_seed(cfg.seed)

    corpus = load_corpus(cfg.data, cfg.seed)
    log.info("data %s: %d train / %d dev / %d test sentences", corpus.name, len(corpus.train), len(corpus.dev), len(corpus.test))
    missing = unseen_tags(corpus)
    if missing:
        log.warning("tags in dev/test but not in train (their entities will count as missed): %s", ", ".join(missing))
    train_sentences = training_sentences(corpus.train, cfg.data.train_scheme, cfg.data.max_len)
    vocab = Vocabulary.build(
        train_sentences, cfg.words.min_freq, cfg.words.lowercase, cfg.words.digits_to_zero, cfg.words.max_word_len
    )
    log.info("vocabulary: %d words, %d characters, %d tags", len(vocab.words), len(vocab.chars), len(vocab.labels))

    word_vectors, coverage = None, None
    if cfg.words.pretrained_path:
        word_vectors, coverage = embedding_matrix(
            vocab, cfg.words.pretrained_path, cfg.words.pretrained_format, cfg.words.dim, cfg.seed
        )
        log.info("pretrained vectors %s cover %.1f%% of the training vocabulary", cfg.words.pretrained_path, 100 * coverage)
    model = build_tagger(model_spec(cfg, vocab), word_vectors)
    model.compile(optimizer=make_optimizer(cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.clipnorm, cfg.optimizer.momentum))
    log.info("model: %s encoder, %s head, %d parameters", cfg.encoder.name, cfg.head.name, model.count_params())

    predictor = TagPredictor(model, vocab, cfg.trainer.eval_batch_size, cfg.data.train_scheme)
    dev_tokens = [list(s.tokens) for s in corpus.dev]
    dev_gold = [list(s.tags) for s in corpus.dev]

    def score_dev() -> float:
        return entity_scores(dev_gold, predictor.predict(dev_tokens))["entity_f1"]

    tags = {"encoder": cfg.encoder.name, "head": cfg.head.name, "data": corpus.name}
    with tracking.training_run(cfg, tags, run_name=f"{cfg.encoder.name}-{cfg.head.name}-{corpus.name}") as run:
        log.info("MLflow run %s in %s", run.info.run_id, cfg.tracking.uri)
        tracking.log_config(cfg)
        _log_data(corpus, vocab)
        mlflow.log_metric("num_params", model.count_params())
        if coverage is not None:
            mlflow.log_metric("pretrained_coverage", coverage)

        stopper = DevF1EarlyStopping(score_dev, cfg.trainer.patience, tracking.log_epoch, cfg.trainer.epochs)
        batches = BucketedBatches(train_sentences, vocab, cfg.trainer.batch_size, cfg.seed)
        started = time.perf_counter()
        fit(model, batches, cfg.trainer.epochs, [stopper])
        train_seconds = time.perf_counter() - started
        log.info("trained in %.1fs; best dev entity F1 %.4f at epoch %d", train_seconds, stopper.best_f1, stopper.best_epoch)

        test_tokens = [list(s.tokens) for s in corpus.test]
        started = time.perf_counter()
        test_pred = predictor.predict(test_tokens)
        predict_seconds = time.perf_counter() - started
        scores = entity_scores([list(s.tags) for s in corpus.test], test_pred)
        log.info("test entity F1 %.4f (precision %.4f, recall %.4f)", scores["entity_f1"], scores["entity_precision"], scores["entity_recall"])

        tracking.log_test_scores(scores)
        mlflow.log_metrics({
            "best_epoch": stopper.best_epoch,
            "best_val_entity_f1": max(stopper.best_f1, 0.0),
            "train_seconds": train_seconds,
            "train_sentences_per_sec": len(corpus.train) * len(stopper.model.history.epoch) / max(train_seconds, 1e-9),
            "predict_sentences_per_sec": len(test_tokens) / max(predict_seconds, 1e-9),
        })
        tracking.log_figure(lambda path: _draw_transitions(model, vocab, test_pred, path), "transition_matrix.png")
        mlflow.log_text(_summary(model), "model_summary.txt")
        if cfg.tracking.log_model:
            log_tagger(model, vocab, cfg.data.train_scheme)
            log.info("logged the model as runs:/%s/model", run.info.run_id)
    return {"val_entity_f1": max(stopper.best_f1, 0.0), "test_entity_f1": scores["entity_f1"], "run_id": run.info.run_id}


def _log_data(corpus, vocab: Vocabulary) -> None:
    """Per-split counts as params and data_stats.json, each split as an MLflow input, OOV rates as metrics."""
    params, table = {}, {}
    for split, sentences in corpus.splits().items():
        table[split] = split_stats(sentences)
        params.update({f"stats.{split}.{k}": v for k, v in table[split].items()})
        tracking.log_split(corpus.name, split, corpus.sources.get(split, corpus.name), content_digest(sentences))
    mlflow.log_params(params)
    mlflow.log_dict(table, "data_stats.json")
    mlflow.log_metrics({"oov_rate_dev": vocab.oov_rate(corpus.dev), "oov_rate_test": vocab.oov_rate(corpus.test)})


def _draw_transitions(model, vocab: Vocabulary, test_pred: list[list[str]], path: str) -> None:
    """CRF: learned transition scores (forbidden cells hatched). Softmax: predicted tag bigram frequencies."""
    if model.crf is not None:
        forbidden = ~model.crf.allowed if model.crf.constraints else None
        matrix = keras.ops.convert_to_numpy(model.crf.transitions)
        plot_transitions(matrix, vocab.labels, "CRF transition scores (from row to column)", path, forbidden)
    else:
        matrix = tag_bigram_frequencies(test_pred, vocab.labels)
        plot_transitions(matrix, vocab.labels, "Predicted tag bigram frequencies on test (softmax head)", path,
                         colorbar="frequency")


def _summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
