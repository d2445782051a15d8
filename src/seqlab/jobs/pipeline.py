"""`train(cfg)`: config -> data -> model -> training -> evaluation -> tracking, top to bottom.

    from seqlab.config import compose
    from seqlab.jobs.pipeline import prepare, train
    result = train(compose(["+encoder=bilstm"]))       # one whole run, recorded in MLflow
    prepared = prepare(compose(["+encoder=cnn"]))        # the data and the compiled model (scripts, notebooks)

Each step takes only the config sections it uses; every MLflow call goes through seqlab.tracking.
The steps are also used one by one by seqlab.jobs.search for each keras-tuner trial.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from seqlab import tracking
from seqlab.config import flatten
from seqlab.data import Corpus, Sentence
from seqlab.data.corpus import content_digest, split_stats
from seqlab.errors import TrainingError
from seqlab.evaluation import Scores, calibration, figures, invalid_transition_rate, latency, score
from seqlab.jobs import sweep
from seqlab.jobs.reading import Data, prepare_data
from seqlab.model import Tagger, build_tagger
from seqlab.model import confidence
from seqlab.model.init import initialise
from seqlab.task import TaggingTask
from seqlab.training import (BucketedBatches, Checkpoint, DevScore, FitOptions, Outcome, Stage, StopState, TimeLimit,
                             WarmupLinearDecay, fit, inverse_time_decay, make_optimizer)
from seqlab.training import checkpoint as checkpoints

log = logging.getLogger("seqlab")
PRETRAINED_ENCODER_LR = 5e-5  # a transformer backbone's learning rate when optimizer.encoder_lr is null (BERT's)


@dataclass
class Prepared:
    """The data and the compiled model of a config; `embeddings`: what words.pretrained gave the word
    embedding (seqlab.data.vectors.Embeddings; None without vectors)."""

    data: Data
    model: Tagger
    embeddings: object | None = None

    @property
    def task(self) -> TaggingTask:
        return self.model.task


def reset(seed: int) -> None:
    """Nothing leaks from a previous job or trial of the same process."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


# ---------------------------------------------------------------- model
def build_task(task_name: str, train_scheme: str, data: Data, words: DictConfig,
               encoder: DictConfig | None = None) -> TaggingTask:
    """The task: vocabulary and labels from the training split only (`words`: min_freq, lowercase, ...); a
    transformer `encoder` adds its backbone's WordPiece vocabulary (the subword inputs)."""
    task = TaggingTask.build(task_name, data.train, words, train_scheme)
    if encoder is not None and encoder.get("preset"):
        from seqlab.config.pretrained import backbone_folder
        from seqlab.data.wordpiece import WordPiece

        task.subwords = WordPiece.from_folder(backbone_folder(encoder.preset))
    return task


def pretrained_embeddings(task: TaggingTask, words: DictConfig, seed: int):
    """The word embeddings words.pretrained starts from (seqlab.data.vectors.Embeddings; it also gives the
    task's vocabulary the words only the vectors know), or None without vectors."""
    if not words.get("pretrained"):
        return None
    from seqlab.data.vectors import embeddings_for, load_vectors

    started = time.perf_counter()
    vectors = load_vectors(words.pretrained, words.get("pretrained_format", "auto"))
    embeddings = embeddings_for(task.vocabulary, vectors, words.dim, seed, words.get("pretrained_max_words"))
    log.info("pretrained vectors %s (%d x %d, read in %.1fs) cover %.1f%% of the %d training words; %d more words "
             "kept fixed for dev, test and inference", words.pretrained, len(vectors.words), vectors.dim,
             time.perf_counter() - started, 100 * embeddings.coverage, len(task.vocabulary.words) - 2,
             len(embeddings.fixed))
    return embeddings


def head_spec(head: DictConfig, task: TaggingTask, train: list[Sentence]) -> dict:
    """The `head` config as the head takes it: head.class_weights resolved to one weight per label, counted on
    the training sentences (seqlab.config.class_weights)."""
    from seqlab.config import class_weights

    spec = plain(head)
    if spec.get("class_weights") is not None:
        spec["class_weights"] = class_weights.resolve(spec["class_weights"], task.labels,
                                                      [task.to_training(s.tags) for s in train])
        log.info("class weights: %s", ", ".join(f"{k} {w:.3g}" for k, w in zip(task.labels, spec["class_weights"])))
    return spec


def build_model(task: TaggingTask, words: DictConfig, encoder: DictConfig, head: dict, seed: int,
                jit_compile="auto", init: str = "keras") -> tuple[Tagger, object | None]:
    """The built tagger (its word embedding from words.pretrained when set) and the embeddings the vectors
    gave (None without vectors). `head`: head_spec's dict."""
    embeddings = pretrained_embeddings(task, words, seed)
    model = build_tagger(task, plain(words), plain(encoder), head, seed=seed, word_vectors=embeddings,
                         jit_compile=jit_compile)
    initialise(model, init, seed)
    return model, embeddings


def compile_model(model: Tagger, optimizer: DictConfig, steps: int = 1) -> Tagger:
    """Compile with the `optimizer` config's choice; the training step under XLA where trainer.jit_compile says.
    `steps`: how many training steps the run will take at most (the linear schedule decays to 0 there)."""
    o = optimizer
    lr = o.lr
    if o.get("schedule", "constant") == "linear":
        lr = WarmupLinearDecay(o.lr, round(o.get("warmup", 0.1) * steps), steps)
    scaled, factor = (), 1.0
    encoder_lr = o.get("encoder_lr")
    if encoder_lr is None and model.reads_inputs:  # a pretrained backbone at a head's 1e-3 forgets what it knew
        encoder_lr = min(o.lr, PRETRAINED_ENCODER_LR)
    if encoder_lr is not None:
        scaled, factor = model.encoder.trainable_variables, encoder_lr / o.lr
    model.compile(optimizer=make_optimizer(o.name, lr, o.clipnorm, o.momentum, o.get("weight_decay"), o.get("ema"),
                                           scaled=scaled, lr_factor=factor),
                  jit_compile=model.uses_xla("train"))
    return model


def training_steps(data: Data, trainer: DictConfig) -> int:
    """The most optimizer steps `trainer` takes on `data`: epochs x batches per epoch."""
    return max(1, trainer.epochs * -(-len(data.train) // trainer.batch_size))


def prepare(cfg: DictConfig, data: Data | None = None) -> Prepared:
    """Seeded from scratch: the data (unless given), the task and the compiled model of `cfg`."""
    reset(cfg.seed)
    data = data or prepare_data(cfg.data, cfg.task.name)
    task = build_task(cfg.task.name, cfg.data.train_scheme, data, cfg.words, cfg.encoder)
    model, embeddings = build_model(task, cfg.words, cfg.encoder, head_spec(cfg.head, task, data.train), cfg.seed,
                                    cfg.trainer.jit_compile, cfg.get("init", "keras"))
    return Prepared(data, compile_model(model, cfg.optimizer, training_steps(data, cfg.trainer)), embeddings)


# ---------------------------------------------------------------- training
def dev_scorer(model: Tagger, dev: list[Sentence], batch_size: int):
    """() -> {monitor: the dev metric, "val_loss": the dev loss, "dev_decode_seconds": ...}, for DevScore.
    The dev loss breaks early stopping's ties (a dev split without entities scores 0 at every epoch).
    Both come from one pass over dev (Tagger.evaluate_and_tag_ids); dev_decode_seconds is that pass."""
    task = model.task
    tokens, gold = [list(s.tokens) for s in dev], [list(s.tags) for s in dev]
    dev_batches = BucketedBatches(dev, task, batch_size, shuffle=False)

    def score_dev() -> dict:
        started = time.perf_counter()
        loss, ids = model.evaluate_and_tag_ids(dev_batches, tokens)
        seconds = time.perf_counter() - started
        predicted = [task.to_output(task.names(row)) for row in ids]
        return {task.monitor: score(task.kind, gold, predicted).metrics[task.metric], "val_loss": loss,
                "dev_decode_seconds": seconds}

    return score_dev


class PerEpochTestScore(keras.callbacks.Callback):
    """trainer.test_each_epoch: the test metric after every epoch (`test_<metric>_by_epoch`), for F1-against-time
    figures; never used to choose anything. Scored with the weights dev was scored with (stage SCORE)."""

    stage = Stage.SCORE

    def __init__(self, model: Tagger, test: list[Sentence], batch_size: int):
        super().__init__()
        self.tagger, self.batch_size = model, batch_size
        self.tokens, self.gold = [list(s.tokens) for s in test], [list(s.tags) for s in test]

    def on_epoch_end(self, epoch, logs=None):
        task = self.tagger.task
        value = score(task.kind, self.gold, self.tagger.tag(self.tokens, self.batch_size)).metrics[task.metric]
        tracking.log_metrics({f"test_{task.metric}_by_epoch": value}, step=epoch + 1)


def training_callbacks(model: Tagger, data: Data, trainer: DictConfig, lr: float, lr_decay: float,
                       seconds_before: float = 0.0) -> list:
    """What the `trainer` and `optimizer` configs ask of every epoch: the dev score, the learning-rate
    schedule, test scores per epoch (never used to choose), the time limit."""
    callbacks = [DevScore(dev_scorer(model, data.corpus.dev, trainer.eval_batch_size))]
    if lr_decay:
        callbacks.append(inverse_time_decay(lr, lr_decay))
    if trainer.get("test_each_epoch"):
        callbacks.append(PerEpochTestScore(model, data.corpus.test, trainer.eval_batch_size))
    if trainer.get("max_minutes"):
        callbacks.append(TimeLimit(60 * trainer.max_minutes, seconds_before))
    return callbacks


def training_batches(model: Tagger, data: Data, batch_size: int, seed: int, singleton_unk: float) -> BucketedBatches:
    return BucketedBatches(data.train, model.task, batch_size, seed, singleton_unk)


# ---------------------------------------------------------------- evaluation
@dataclass
class Evaluation:
    """The test split tagged and scored: ids in the training scheme, tags in the output scheme."""

    tokens: list[list[str]]
    gold: list[list[str]]
    ids: list
    predicted: list[list[str]]
    scores: Scores
    sentences_per_second: float
    invalid_transition_rate: float | None


def evaluate(model: Tagger, test: list[Sentence], batch_size: int) -> Evaluation:
    task = model.task
    tokens, gold = [list(s.tokens) for s in test], [list(s.tags) for s in test]
    model.tag_ids(next(([t] for t in tokens if t), []), batch_size)  # the decoder traced before the clock starts
    started = time.perf_counter()  # from token strings to output tags, as a user's tag() call
    ids = model.tag_ids(tokens, batch_size)
    raw = [task.names(row) for row in ids]  # in the training scheme
    predicted = [task.to_output(tags) for tags in raw]
    seconds = time.perf_counter() - started
    scores = score(task.kind, gold, predicted)
    log.info("test %s", "  ".join(f"{k} {v:.4f}" for k, v in scores.metrics.items()))
    invalid = invalid_transition_rate(raw, task.labels, task.constraint_scheme) if task.constraint_scheme else None
    return Evaluation(tokens, gold, ids, predicted, scores, len(tokens) / max(seconds, 1e-9), invalid)


def calibration_panels(model: Tagger, result: Evaluation, batch_size: int) -> dict[str, tuple]:
    """The test split tagged once more with probabilities (seqlab.model.confidence):
    {"tokens": (confidence [N], correct [N])} and, for span tasks, "entities" (the predicted ones)."""
    task = model.task
    token_conf, token_ok, entity_conf, entity_ok = [], [], [], []
    for tokens, gold, scored in zip(result.tokens, result.gold, model.tag_scored(result.tokens, batch_size)):
        predicted = task.to_output(task.names(scored.ids))
        conf = confidence.token_scores(task, scored)
        token_conf += list(conf)
        token_ok += [p == g for p, g in zip(predicted, gold)]
        spans, truth = task.output_spans(predicted), set(task.output_spans(gold))
        entity_conf += confidence.entity_confidences(spans, conf)
        entity_ok += [span in truth for span in spans]
    panels = {"tokens": (np.array(token_conf), np.array(token_ok))}
    if task.kind.spans:
        panels["entities"] = (np.array(entity_conf), np.array(entity_ok))
    return panels


def record_calibration(model: Tagger, result: Evaluation, batch_size: int) -> None:
    """test_token_ece (and test_entity_ece) and the reliability diagrams, calibration.png, on the active run."""
    panels = calibration_panels(model, result, batch_size)
    names = {"tokens": "test_token_ece", "entities": "test_entity_ece"}
    tracking.log_metrics({names[name]: calibration.expected_calibration_error(*pair) for name, pair in panels.items()})
    tracking.log_figure(calibration.plot_reliability(panels), "calibration.png")


def record_latency(model: Tagger, sentences: list[list[str]]) -> None:
    """latency_ms_p50 and latency_ms_p95 of tagging `sentences` one at a time, on the active run."""
    ms = latency.latencies_ms(lambda s: model.tag_ids([s], 1), sentences)
    measured = latency.summary(ms)
    log.info("latency, one sentence at a time: p50 %.2f ms, p95 %.2f ms (%d test sentences)",
             measured["latency_ms_p50"], measured["latency_ms_p95"], len(sentences))
    tracking.log_metrics(measured)


def record_evaluation(model: Tagger, result: Evaluation, cfg: DictConfig) -> None:
    """What the test split gives a run (or a search's parent): scores, predictions and figures (record_test),
    calibration (tracking.calibration) and latency (tracking.latency_sentences)."""
    record_test(result, model)
    if cfg.tracking.get("calibration", True):
        record_calibration(model, result, cfg.trainer.eval_batch_size)
    n = cfg.tracking.get("latency_sentences", 100)
    if n:
        record_latency(model, [s for s in result.tokens if s][:n])


def record_test(result: Evaluation, model: Tagger) -> None:
    """Test scores, predictions and figures on the active run."""
    tracking.log_test_scores(result.scores)
    metrics = {"predict_sentences_per_sec": result.sentences_per_second}
    if result.invalid_transition_rate is not None:
        metrics["test_invalid_transition_rate"] = result.invalid_transition_rate
    tracking.log_metrics(metrics)
    tracking.log_predictions(result.tokens, result.gold, result.predicted)
    tracking.log_figure(model.head.transition_figure(result.ids), "transition_matrix.png")
    kind = model.task.kind
    if kind.spans:
        figure = figures.plot_f1_by_type(result.scores.per_label, result.scores.support,
                                         f"test {kind.unit} F1 by type", f"F1 (n = gold {kind.unit}s of the type)")
        tracking.log_figure(figure, "f1_by_type.png")
    else:
        figure = figures.plot_f1_by_type(result.scores.per_label, result.scores.support, "test accuracy by gold tag",
                                         "accuracy (n = gold tokens)")
        tracking.log_figure(figure, "accuracy_by_tag.png")
    tracking.log_text(model_summary(model), "model_summary.txt")


def record_model(model: Tagger, name: str, example: list[list[str]], register_as: str | None) -> str | None:
    """Log the tagger as the run's pyfunc model `name`; returns the registered version (with register_as)."""
    info = tracking.log_tagger(model, name=name, input_example=example, registered_model_name=register_as)
    uri = f"runs:/{tracking.active_run_id()}/{name}"
    tracking.set_tags({"model_uri": uri, "model_id": info.model_id})
    log.info("logged the model as %s%s", uri,
             f", registered as {register_as} version {info.registered_model_version}" if register_as else "")
    return info.registered_model_version if register_as else None


def record_data(data: Data, prepared: Prepared) -> None:
    """Per-split counts as data_stats.json (params hold the config only), each split as an MLflow input,
    OOV rates, sizes."""
    corpus, task = data.corpus, prepared.task
    table = {}
    for split, sentences in corpus.splits().items():
        table[split] = split_stats(sentences, spans=task.kind.spans)
        tracking.log_split(corpus.name, split, corpus.sources.get(split, corpus.name), content_digest(sentences))
    tracking.log_dict(table, "data_stats.json")
    metrics = {"train_sentences": len(corpus.train), "oov_rate_dev": task.vocabulary.oov_rate(corpus.dev), "oov_rate_test": task.vocabulary.oov_rate(corpus.test),
               "num_params": prepared.model.count_params()}
    embeddings = prepared.embeddings
    if embeddings is not None:
        metrics["pretrained_coverage"] = embeddings.coverage  # of the training words
        metrics["pretrained_coverage_dev"] = embeddings.token_coverage(task.vocabulary, corpus.dev)  # of the tokens
        metrics["pretrained_coverage_test"] = embeddings.token_coverage(task.vocabulary, corpus.test)
        metrics["pretrained_extra_words"] = task.num_fixed_words
    tracking.log_metrics(metrics)


def model_summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)


# ---------------------------------------------------------------- the whole run
def run_tags(cfg: DictConfig, corpus: Corpus) -> dict[str, str]:
    """The tags every run of this config carries: what it is (task, encoder, head, data), which data it
    chose on and was tested on (`dev_digest`, `test_digest`; `fold` and `folds` under cross-validation) and its sweep."""
    in_sweep = sweep.current()
    tags = {"task": cfg.task.name, "encoder": cfg.encoder.name, "head": cfg.head.name, "data": corpus.name,
            "dev_digest": content_digest(corpus.dev), "test_digest": content_digest(corpus.test), **sweep.job_details()}
    if cfg.data.get("folds", 0) >= 2:
        tags.update(fold=str(cfg.data.fold), folds=str(cfg.data.folds))
    if in_sweep is not None:
        tags["sweep"] = in_sweep.name
    return tags


def resume_point(cfg: DictConfig):
    """The checkpoint's state when trainer.resume=true and one exists, else None."""
    if not cfg.trainer.get("resume"):
        return None
    return checkpoints.load_state(cfg.trainer.checkpoint, checkpoints.config_of(flatten(cfg)))


def train(cfg: DictConfig, data: Data | None = None) -> dict:
    """Train one tagger as `cfg` says, evaluate it on test, record it all in MLflow. `data`: the config's data,
    when the caller read it already (seqlab.jobs.reading.prepare_data)."""
    prepared = prepare(cfg, data)
    data, model, task = prepared.data, prepared.model, prepared.task
    log.info("model: %s encoder, %s head, %d parameters, %d tags", cfg.encoder.name, cfg.head.name,
             model.count_params(), len(task.labels))
    in_sweep = sweep.current()
    tags = run_tags(cfg, data.corpus)
    state = resume_point(cfg)
    with tracking.training_run(cfg.tracking, tags, run_name=sweep.run_name(cfg, data.corpus.name, in_sweep),
                               parent_run_id=in_sweep.parent_run_id if in_sweep else None,
                               resume_run_id=state.run_id if state else None) as run_id:
        log.info("MLflow run %s in %s", run_id, cfg.tracking.uri)
        log.debug("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
        log.debug("%r, labels %s", task, task.labels)
        resume, initial_epoch, seconds_before = None, 0, 0.0
        if state is None:
            tracking.log_config(cfg)
            record_data(data, prepared)
        else:
            best_weights = checkpoints.restore(model, state, cfg.trainer.checkpoint)
            resume = StopState(state.best, state.best_loss, state.best_epoch, state.wait, best_weights)
            initial_epoch, seconds_before = state.epoch, state.train_seconds
            log.info("resuming from %s after epoch %d (best %s %.4f at epoch %d)", cfg.trainer.checkpoint, state.epoch,
                     task.monitor, state.best, state.best_epoch + 1)
        started = time.perf_counter()
        callbacks = [*training_callbacks(model, data, cfg.trainer, cfg.optimizer.lr, cfg.optimizer.get("lr_decay", 0.0),
                                         seconds_before), tracking.epoch_metrics(task.monitor)]
        if cfg.trainer.get("checkpoint"):
            callbacks.append(Checkpoint(cfg.trainer.checkpoint, run_id, checkpoints.config_of(flatten(cfg)), seconds_before,
                                        clock=lambda: time.perf_counter() - started))
        options = FitOptions(cfg.trainer.epochs, task.monitor, cfg.trainer.patience, cfg.trainer.min_delta,
                             cfg.trainer.get("progress"), initial_epoch, resume)
        batches = training_batches(model, data, cfg.trainer.batch_size, cfg.seed, cfg.words.get("singleton_unk", 0.0))
        outcome = fit(model, batches, options, callbacks)
        seconds = time.perf_counter() - started
        best = record_outcome(outcome, task.monitor, cfg.optimizer.lr, seconds, seconds_before, len(data.train))
        result = evaluate(model, data.corpus.test, cfg.trainer.eval_batch_size)
        record_evaluation(model, result, cfg)
        if cfg.tracking.log_model:
            # A sweep registers only its best job's model, when it ends (seqlab.jobs.sweep.finish).
            register_as = None if in_sweep is not None else cfg.tracking.get("register_as")
            record_model(model, sweep.tagger_name(cfg, data.corpus.name), [list(s.tokens) for s in data.corpus.test[:2]],
                         register_as)
    return {"monitor": task.monitor, task.monitor: best, f"test_{task.metric}": result.scores.metrics[task.metric],
            "run_id": run_id}


def record_outcome(outcome: Outcome, monitor: str, lr: float, seconds: float, seconds_before: float,
                   sentences: int) -> float:
    """The fit's summary metrics on the active run; raises TrainingError when no epoch was usable."""
    if outcome.nan_loss:
        if not outcome.scored:
            raise TrainingError(f"the loss became NaN or infinite in the first epoch; lower optimizer.lr={lr}")
        tracking.set_tags({"nan_loss": f"after epoch {outcome.epochs_run - 1}: kept the best epoch, {outcome.best_epoch}"})
    if outcome.chosen_by_loss:
        tracking.set_tags({"best_epoch_chosen_by": "val_loss"})
    best = max(outcome.best_score, 0.0)
    log.info("trained in %.1fs; best %s %.4f at epoch %d", seconds, monitor, best, outcome.best_epoch)
    tracking.log_metrics({"best_epoch": outcome.best_epoch, f"best_{monitor}": best,
                          "train_seconds": seconds_before + seconds,
                          "train_sentences_per_sec": sentences * outcome.epochs_run / max(seconds, 1e-9)})
    return best
