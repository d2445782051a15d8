"""`train(cfg)`: config -> data -> model -> training -> evaluation -> tracking, top to bottom.

The steps are also used one by one by `seqlab.tuning` for each search trial.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import keras
import mlflow
from omegaconf import DictConfig, OmegaConf

from seqlab import sweep, tracking
from seqlab.data import Corpus, Sentence, load_corpus
from seqlab.data.corpus import content_digest, split_stats
from seqlab.data.schemes import to_iob2
from seqlab.data.sources import training_sentences, unseen_tags
from seqlab.data.vectors import embedding_matrix
from seqlab.data.vocab import Vocabulary
from seqlab.errors import TrainingError
from seqlab.evaluation import entity_scores, has_entities, invalid_transition_rate, tag_bigram_counts
from seqlab.figures import plot_crf_transitions, plot_f1_by_type, plot_predicted_transitions
from seqlab.inference import TagPredictor
from seqlab.model import build_tagger
from seqlab.pyfunc_model import log_tagger
from seqlab.training import BucketedBatches, DevF1EarlyStopping, fit, make_optimizer

log = logging.getLogger("seqlab")


@dataclass
class Data:
    """A corpus and the training sentences the model sees (truncated, in the training scheme)."""

    corpus: Corpus
    train: list[Sentence]


@dataclass
class Built:
    model: keras.Model
    vocab: Vocabulary
    pretrained_coverage: float | None
    predictor: TagPredictor | None = None  # made on first use; its traced decoder serves dev and test


def reset(seed: int) -> None:
    """Nothing leaks from a previous job or trial of the same process."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def prepare_data(cfg: DictConfig) -> Data:
    corpus = load_corpus(cfg.data)
    log.info("data %s: %d train / %d dev / %d test sentences", corpus.name, len(corpus.train), len(corpus.dev), len(corpus.test))
    for split in ("dev", "test"):
        if not has_entities([s.tags for s in getattr(corpus, split)]):
            log.warning("the %s split has no entities: its entity F1 is 0%s", split,
                        ", so early stopping keeps the first epoch" if split == "dev" else "")
    missing = unseen_tags(corpus)
    if missing:
        log.warning("tags in dev/test but not in train (their entities will count as missed): %s", ", ".join(missing))
    return Data(corpus, training_sentences(corpus.train, cfg.data.train_scheme, cfg.data.max_len))


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


def build(cfg: DictConfig, data: Data) -> Built:
    """Vocabulary from the training split only, then the compiled model."""
    w = cfg.words
    vocab = Vocabulary.build(data.train, w.min_freq, w.lowercase, w.digits_to_zero, w.max_word_len)
    word_vectors, coverage = None, None
    if w.pretrained_path:
        word_vectors, coverage = embedding_matrix(vocab, w.pretrained_path, w.pretrained_format, w.dim, cfg.seed)
        log.info("pretrained vectors %s cover %.1f%% of the training vocabulary", w.pretrained_path, 100 * coverage)
    model = build_tagger(model_spec(cfg, vocab), word_vectors)
    o = cfg.optimizer
    model.compile(optimizer=make_optimizer(o.name, o.lr, o.clipnorm, o.momentum))
    return Built(model, vocab, coverage)


def predictor_for(cfg: DictConfig, built: Built) -> TagPredictor:
    if built.predictor is None:
        built.predictor = TagPredictor(built.model, built.vocab, cfg.trainer.eval_batch_size, cfg.data.train_scheme)
    return built.predictor


def fit_model(cfg: DictConfig, data: Data, built: Built, epochs: int, patience: int,
              callbacks: list | None = None, initial_epoch: int = 0) -> DevF1EarlyStopping:
    """Train with early stopping on dev entity F1; per-epoch metrics go to the active MLflow run."""
    predictor = predictor_for(cfg, built)
    dev_tokens = [list(s.tokens) for s in data.corpus.dev]
    dev_gold = [list(s.tags) for s in data.corpus.dev]

    def score_dev() -> float:
        return entity_scores(dev_gold, predictor.predict(dev_tokens))["entity_f1"]

    stopper = DevF1EarlyStopping(score_dev, patience, tracking.log_epoch, epochs)
    batches = BucketedBatches(data.train, built.vocab, cfg.trainer.batch_size, cfg.seed)
    fit(built.model, batches, epochs, [stopper, *(callbacks or [])], initial_epoch, cfg.trainer.get("progress"))
    return stopper


def evaluate_and_log(cfg: DictConfig, data: Data, built: Built) -> dict:
    """Test scores, predictions, heatmap, summary and the model, logged to the active MLflow run."""
    test_tokens = [list(s.tokens) for s in data.corpus.test]
    test_gold = [list(s.tags) for s in data.corpus.test]
    predictor = predictor_for(cfg, built)
    started = time.perf_counter()
    raw = predictor.predict_labels(test_tokens)  # in the training scheme
    predict_seconds = time.perf_counter() - started
    test_pred = [to_iob2(tags, cfg.data.train_scheme) for tags in raw]
    scores = entity_scores(test_gold, test_pred)
    log.info("test entity F1 %.4f (precision %.4f, recall %.4f)", scores["entity_f1"], scores["entity_precision"], scores["entity_recall"])
    tracking.log_test_scores(scores)
    invalid = invalid_transition_rate(raw, built.vocab.labels, cfg.data.train_scheme)
    mlflow.log_metrics({"predict_sentences_per_sec": len(test_tokens) / max(predict_seconds, 1e-9),
                        "test_invalid_transition_rate": invalid})
    tracking.log_predictions(test_tokens, test_gold, test_pred)
    tracking.log_figure(lambda path: _draw_transitions(built, raw, cfg.data.train_scheme, path), "transition_matrix.png")
    tracking.log_figure(lambda path: plot_f1_by_type(scores["per_type_f1"], scores["per_type_support"], path), "f1_by_type.png")
    mlflow.log_text(_summary(built.model), "model_summary.txt")
    if cfg.tracking.log_model:
        # A sweep registers only its best job's model, when it ends (seqlab.leaderboard.finish_sweep).
        register_as = None if sweep.current() is not None else cfg.tracking.get("register_as")
        name = sweep.tagger_name(cfg, data.corpus.name)
        info = log_tagger(built.model, built.vocab, cfg.data.train_scheme, name=name,
                          input_example=[list(s.tokens) for s in data.corpus.test[:2]], registered_model_name=register_as)
        uri = f"runs:/{mlflow.active_run().info.run_id}/{name}"
        mlflow.set_tags({"model_uri": uri, "model_id": info.model_id})
        scores["registered_version"] = info.registered_model_version if register_as else None
        log.info("logged the model as %s%s", uri,
                 f", registered as {register_as} version {info.registered_model_version}" if register_as else "")
    return scores


def log_data(data: Data, built: Built) -> None:
    """Per-split counts as data_stats.json (params hold the config only), each split as an MLflow input,
    OOV rates, sizes."""
    corpus, vocab = data.corpus, built.vocab
    table = {}
    for split, sentences in corpus.splits().items():
        table[split] = split_stats(sentences)
        tracking.log_split(corpus.name, split, corpus.sources.get(split, corpus.name), content_digest(sentences))
    mlflow.log_dict(table, "data_stats.json")
    metrics = {"oov_rate_dev": vocab.oov_rate(corpus.dev), "oov_rate_test": vocab.oov_rate(corpus.test),
               "num_params": built.model.count_params()}
    if built.pretrained_coverage is not None:
        metrics["pretrained_coverage"] = built.pretrained_coverage
    mlflow.log_metrics(metrics)


def train(cfg: DictConfig) -> dict:
    """Train one tagger as `cfg` says, evaluate it on test, record it all in MLflow."""
    reset(cfg.seed)
    data = prepare_data(cfg)
    built = build(cfg, data)
    log.info("model: %s encoder, %s head, %d parameters, %d tags", cfg.encoder.name, cfg.head.name,
             built.model.count_params(), len(built.vocab.labels))

    in_sweep = sweep.current()
    tags = {"encoder": cfg.encoder.name, "head": cfg.head.name, "data": data.corpus.name,
            "test_digest": content_digest(data.corpus.test), **sweep.job_details()}
    if in_sweep is not None:
        tags["sweep"] = in_sweep.name
    run_name = sweep.run_name(cfg, data.corpus.name, in_sweep)
    parent = in_sweep.parent_run_id if in_sweep is not None else None
    with tracking.training_run(cfg, tags, run_name=run_name, parent_run_id=parent) as run:
        log.info("MLflow run %s in %s", run.info.run_id, cfg.tracking.uri)
        log.debug("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
        log.debug("vocabulary: %d words, %d characters, labels %s", len(built.vocab.words), len(built.vocab.chars),
                  built.vocab.labels)
        tracking.log_config(cfg)
        log_data(data, built)
        started = time.perf_counter()
        stopper = fit_model(cfg, data, built, cfg.trainer.epochs, cfg.trainer.patience)
        seconds = time.perf_counter() - started
        if stopper.nan_loss:
            if stopper.best_weights is None:
                raise TrainingError(f"the loss became NaN or infinite in the first epoch; lower optimizer.lr={cfg.optimizer.lr}")
            mlflow.set_tag("nan_loss", f"after epoch {stopper.epochs_run - 1}: kept the best epoch, {stopper.best_epoch}")
        log.info("trained in %.1fs; best dev entity F1 %.4f at epoch %d", seconds, stopper.best_f1, stopper.best_epoch)
        mlflow.log_metrics({
            "best_epoch": stopper.best_epoch,
            "best_val_entity_f1": max(stopper.best_f1, 0.0),
            "train_seconds": seconds,
            "train_sentences_per_sec": len(data.train) * stopper.epochs_run / max(seconds, 1e-9),
        })
        scores = evaluate_and_log(cfg, data, built)
    return {"val_entity_f1": max(stopper.best_f1, 0.0), "test_entity_f1": scores["entity_f1"], "run_id": run.info.run_id}


def _draw_transitions(built: Built, raw_pred: list[list[str]], scheme: str, path: str) -> None:
    """CRF: learned scores with <start>/<end> (forbidden cells hatched). Softmax: its predicted transitions,
    forbidden ones it made hatched red, never-predicted tags grey. `raw_pred` is in the training scheme."""
    from seqlab.constraints import allowed_transitions

    crf, labels = built.model.crf, list(built.vocab.labels)
    if crf is not None:
        weights = [keras.ops.convert_to_numpy(w) for w in (crf.transitions, crf.start_transitions, crf.end_transitions)]
        allowed = allowed_transitions(labels, crf.constraints) if crf.constraints else None
        plot_crf_transitions(*weights, labels, path, allowed, crf.constraints or "")
    else:
        plot_predicted_transitions(tag_bigram_counts(raw_pred, labels), labels, path,
                                   allowed_transitions(labels, scheme), scheme)


def _summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
