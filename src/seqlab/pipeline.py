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

from seqlab import checkpoint, choices, sweep, tracking
from seqlab.checkpoint import Checkpoint
from seqlab.data import Corpus, Sentence, load_corpus
from seqlab.data.corpus import content_digest, split_stats
from seqlab.data.sources import training_sentences, unseen_tags
from seqlab.data.vectors import embedding_matrix
from seqlab.errors import TrainingError
from seqlab.evaluation import Scores, has_entities, invalid_transition_rate, score
from seqlab.figures import plot_f1_by_type
from seqlab.model import Tagger, build_tagger
from seqlab.model.init import initialise
from seqlab.pyfunc_model import log_tagger
from seqlab.task import TaggingTask
from seqlab.training import BucketedBatches, Outcome, TimeLimit, fit, inverse_time_decay, make_optimizer

log = logging.getLogger("seqlab")


@dataclass
class Data:
    """A corpus and the training sentences the model sees (truncated to data.max_len, still IOB2)."""

    corpus: Corpus
    train: list[Sentence]


@dataclass
class Built:
    model: Tagger  # owns its task: model.task
    pretrained_coverage: float | None

    @property
    def task(self) -> TaggingTask:
        return self.model.task


def reset(seed: int) -> None:
    """Nothing leaks from a previous job or trial of the same process."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def task_kind(cfg: DictConfig) -> choices.TaskKind:
    return choices.TASKS[cfg.task.name]


def prepare_data(cfg: DictConfig) -> Data:
    kind = task_kind(cfg)
    corpus = load_corpus(cfg.data, scheme=None if kind.spans else "none")
    log.info("data %s (task %s): %d train / %d dev / %d test sentences", corpus.name, cfg.task.name,
             len(corpus.train), len(corpus.dev), len(corpus.test))
    if kind.spans:
        for split in ("dev", "test"):
            if not has_entities([s.tags for s in getattr(corpus, split)]):
                plural = "entities" if kind.unit == "entity" else f"{kind.unit}s"
                log.warning("the %s split has no %s: its %s F1 is 0%s", split, plural, kind.unit,
                            ", so early stopping keeps the first epoch" if split == "dev" else "")
    missing = unseen_tags(corpus)
    if missing:
        log.warning("tags in dev/test but not in train (they can only be missed): %s", ", ".join(missing))
    return Data(corpus, training_sentences(corpus.train, cfg.data.max_len))


def build(cfg: DictConfig, data: Data) -> Built:
    """The task (vocabulary and labels from the training split only), then the compiled model."""
    w = cfg.words
    task = TaggingTask.build(cfg.task.name, data.train, w, cfg.data.train_scheme)
    word_vectors, coverage = None, None
    if w.pretrained_path:
        word_vectors, coverage = embedding_matrix(task.vocabulary, w.pretrained_path, w.pretrained_format, w.dim, cfg.seed)
        log.info("pretrained vectors %s cover %.1f%% of the training vocabulary", w.pretrained_path, 100 * coverage)
    plain = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    model = build_tagger(task, plain(w), plain(cfg.encoder), plain(cfg.head), seed=cfg.seed, word_vectors=word_vectors,
                         jit_compile=cfg.trainer.jit_compile)
    o = cfg.optimizer
    initialise(model, cfg.get("init", "keras"), cfg.seed)
    optimizer = make_optimizer(o.name, o.lr, o.clipnorm, o.momentum, o.get("weight_decay"), o.get("ema"))
    model.compile(optimizer=optimizer, jit_compile=model.uses_xla("train"))
    return Built(model, coverage)


def fit_model(cfg: DictConfig, data: Data, built: Built, epochs: int, patience: int,
              callbacks: list | None = None, initial_epoch: int = 0, resume=None, save_to: Checkpoint | None = None,
              seconds_before: float = 0.0) -> Outcome:
    """Train with early stopping on the task's dev metric; per-epoch metrics go to the active MLflow run.

    `resume`: early stopping's saved state when continuing at `initial_epoch`; `save_to`: a checkpoint
    written after every epoch (it is handed the early-stopping callback); `seconds_before`: training
    time of earlier sessions of a resumed run (trainer.max_minutes counts it)."""
    model, task = built.model, built.task
    dev_tokens = [list(s.tokens) for s in data.corpus.dev]
    dev_gold = [list(s.tags) for s in data.corpus.dev]

    def score_dev() -> tuple[float, dict]:
        started = time.perf_counter()
        predicted = model.tag(dev_tokens, cfg.trainer.eval_batch_size)
        decode_seconds = time.perf_counter() - started
        return score(task.kind, dev_gold, predicted).metrics[task.metric], {"dev_decode_seconds": decode_seconds}

    train = [Sentence(s.tokens, tuple(task.to_training(s.tags))) for s in data.train]
    batches = BucketedBatches(train, task, cfg.trainer.batch_size, cfg.seed, cfg.words.get("singleton_unk", 0.0))
    o = cfg.optimizer
    schedule = [inverse_time_decay(o.lr, o.lr_decay)] if o.get("lr_decay") else []
    extra = list(callbacks or [])
    if cfg.trainer.get("test_each_epoch"):
        test_tokens, test_gold = [list(s.tokens) for s in data.corpus.test], [list(s.tags) for s in data.corpus.test]

        def score_test(epoch, logs):
            value = score(task.kind, test_gold, model.tag(test_tokens, cfg.trainer.eval_batch_size)).metrics[task.metric]
            mlflow.log_metric(f"test_{task.metric}_by_epoch", value, step=epoch + 1)

        extra.append(keras.callbacks.LambdaCallback(on_epoch_end=score_test))
    if cfg.trainer.get("max_minutes"):
        extra.append(TimeLimit(60 * cfg.trainer.max_minutes, seconds_before))
    return fit(model, batches, epochs, score_dev, task.monitor, patience, cfg.trainer.min_delta,
               tracking.log_epoch, extra, initial_epoch, cfg.trainer.get("progress"), before=schedule, resume=resume,
               checkpoint=save_to.watching if save_to is not None else None)


def evaluate_and_log(cfg: DictConfig, data: Data, built: Built) -> tuple[Scores, str | None]:
    """Test scores, predictions, figures, summary and the model, logged to the active MLflow run.

    Returns the scores and the registered model version (None unless tracking.register_as registered it).
    """
    model, task = built.model, built.task
    test_tokens = [list(s.tokens) for s in data.corpus.test]
    test_gold = [list(s.tags) for s in data.corpus.test]
    started = time.perf_counter()
    ids = model.tag_ids(test_tokens, cfg.trainer.eval_batch_size)
    predict_seconds = time.perf_counter() - started
    raw = [task.names(row) for row in ids]  # in the training scheme
    test_pred = [task.to_output(tags) for tags in raw]
    scores = score(task.kind, test_gold, test_pred)
    log.info("test %s", "  ".join(f"{k} {v:.4f}" for k, v in scores.metrics.items()))
    tracking.log_test_scores(scores)
    metrics = {"predict_sentences_per_sec": len(test_tokens) / max(predict_seconds, 1e-9)}
    if task.constraint_scheme:
        metrics["test_invalid_transition_rate"] = invalid_transition_rate(raw, task.labels, task.constraint_scheme)
    mlflow.log_metrics(metrics)
    tracking.log_predictions(test_tokens, test_gold, test_pred)
    mlflow.log_figure(model.head.transition_figure(ids), "transition_matrix.png")
    unit = task.kind.unit
    title, xlabel, name = ((f"test {unit} F1 by type", f"F1 (n = gold {unit}s of the type)", "f1_by_type.png")
                           if task.kind.spans else
                           ("test accuracy by gold tag", "accuracy (n = gold tokens)", "accuracy_by_tag.png"))
    mlflow.log_figure(plot_f1_by_type(scores.per_label, scores.support, title, xlabel), name)
    mlflow.log_text(_summary(model), "model_summary.txt")
    registered_version = None
    if cfg.tracking.log_model:
        # A sweep registers only its best job's model, when it ends (seqlab.leaderboard.finish_sweep).
        register_as = None if sweep.current() is not None else cfg.tracking.get("register_as")
        name = sweep.tagger_name(cfg, data.corpus.name)
        info = log_tagger(model, name=name, input_example=[list(s.tokens) for s in data.corpus.test[:2]],
                          registered_model_name=register_as)
        uri = f"runs:/{mlflow.active_run().info.run_id}/{name}"
        mlflow.set_tags({"model_uri": uri, "model_id": info.model_id})
        registered_version = info.registered_model_version if register_as else None
        log.info("logged the model as %s%s", uri,
                 f", registered as {register_as} version {info.registered_model_version}" if register_as else "")
    return scores, registered_version


def log_data(data: Data, built: Built) -> None:
    """Per-split counts as data_stats.json (params hold the config only), each split as an MLflow input,
    OOV rates, sizes."""
    corpus, vocab = data.corpus, built.task.vocabulary
    table = {}
    for split, sentences in corpus.splits().items():
        table[split] = split_stats(sentences, spans=built.task.kind.spans)
        tracking.log_split(corpus.name, split, corpus.sources.get(split, corpus.name), content_digest(sentences))
    mlflow.log_dict(table, "data_stats.json")
    metrics = {"oov_rate_dev": vocab.oov_rate(corpus.dev), "oov_rate_test": vocab.oov_rate(corpus.test),
               "num_params": built.model.count_params()}
    if built.pretrained_coverage is not None:
        metrics["pretrained_coverage"] = built.pretrained_coverage
    mlflow.log_metrics(metrics)


def run_tags(cfg: DictConfig, corpus: Corpus) -> dict[str, str]:
    """The tags every run of this config carries: what it is (task, encoder, head, data) and its sweep."""
    in_sweep = sweep.current()
    tags = {"task": cfg.task.name, "encoder": cfg.encoder.name, "head": cfg.head.name, "data": corpus.name,
            **sweep.job_details()}
    if in_sweep is not None:
        tags["sweep"] = in_sweep.name
    return tags


def train(cfg: DictConfig) -> dict:
    """Train one tagger as `cfg` says, evaluate it on test, record it all in MLflow."""
    reset(cfg.seed)
    data = prepare_data(cfg)
    built = build(cfg, data)
    task = built.task
    log.info("model: %s encoder, %s head, %d parameters, %d tags", cfg.encoder.name, cfg.head.name,
             built.model.count_params(), len(task.labels))

    in_sweep = sweep.current()
    tags = {**run_tags(cfg, data.corpus), "test_digest": content_digest(data.corpus.test)}
    run_name = sweep.run_name(cfg, data.corpus.name, in_sweep)
    parent = in_sweep.parent_run_id if in_sweep is not None else None
    state = checkpoint.load_state(cfg) if cfg.trainer.get("resume") else None
    with tracking.training_run(cfg, tags, run_name=run_name, parent_run_id=parent,
                               resume_run_id=state.run_id if state else None) as run:
        log.info("MLflow run %s in %s", run.info.run_id, cfg.tracking.uri)
        log.debug("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
        log.debug("%r, labels %s", task, task.labels)
        resume, initial_epoch, seconds_before = None, 0, 0.0
        if state is None:
            tracking.log_config(cfg)
            log_data(data, built)
        else:
            best_weights = checkpoint.restore(built.model, state, cfg.trainer.checkpoint)
            resume, initial_epoch, seconds_before = (state.best, state.best_epoch, state.wait, best_weights), state.epoch, state.train_seconds
            log.info("resuming from %s after epoch %d (best %s %.4f at epoch %d)", cfg.trainer.checkpoint, state.epoch,
                     task.monitor, state.best, state.best_epoch + 1)
        started = time.perf_counter()
        save_to = None
        if cfg.trainer.get("checkpoint"):
            save_to = Checkpoint(cfg.trainer.checkpoint, run.info.run_id, checkpoint.config_of(cfg), seconds_before,
                                 clock=lambda: time.perf_counter() - started)
        outcome = fit_model(cfg, data, built, cfg.trainer.epochs, cfg.trainer.patience, initial_epoch=initial_epoch,
                            resume=resume, save_to=save_to, seconds_before=seconds_before)
        seconds = time.perf_counter() - started
        if outcome.nan_loss:
            if not outcome.scored:
                raise TrainingError(f"the loss became NaN or infinite in the first epoch; lower optimizer.lr={cfg.optimizer.lr}")
            mlflow.set_tag("nan_loss", f"after epoch {outcome.epochs_run - 1}: kept the best epoch, {outcome.best_epoch}")
        best = max(outcome.best_score, 0.0)
        log.info("trained in %.1fs; best %s %.4f at epoch %d", seconds, task.monitor, best, outcome.best_epoch)
        mlflow.log_metrics({
            "best_epoch": outcome.best_epoch,
            f"best_{task.monitor}": best,
            "train_seconds": seconds_before + seconds,
            "train_sentences_per_sec": len(data.train) * outcome.epochs_run / max(seconds, 1e-9),
        })
        scores, _ = evaluate_and_log(cfg, data, built)
    return {"monitor": task.monitor, task.monitor: best, f"test_{task.metric}": scores.metrics[task.metric],
            "run_id": run.info.run_id}


def _summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
