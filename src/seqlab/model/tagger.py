"""The sequence tagger: a Keras 3 model that owns its task and tags raw tokens.

    tagger.tag([["EU", "rejects", "German", "call"]]) -> [["B-ORG", "O", "B-MISC", "O"]]

    inputs {"words": int [B, T], "chars": int [B, T, W], "casing": int [B, T]}  (0 = padding)
      -> WordFeatures [B, T, D] -> encoder [B, T, H] -> Dense [B, T, K] emission scores -> head

The `task` (seqlab.task.TaggingTask, saved inside the .keras file) turns tokens
into those inputs and decoded ids back into tags; the head, chosen once here,
gives the loss (`compute_loss`) and the decoder (`predict_step`: int32 tag ids
[B, T], -1 at padding). This module knows neither corpora nor tag schemes: it
talks to the task through the attributes and methods documented on `Tagger`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from seqlab.config import jit_setting
from seqlab.model.backend import as_dataset, compiled_decoder, compiled_function, is_tensorflow, predict_step
from seqlab.model.confidence import Scored, scored_sentence
from seqlab.model.encoders import build_encoder
from seqlab.model.features import WordFeatures
from seqlab.model.heads import build_head
from seqlab.model.jit import use_xla, xla_inside_graphs

PAD_TAG = -1


@keras.saving.register_keras_serializable(package="seqlab")
class Tagger(keras.Model):
    """A tagger built from its task and three plain-dict configs.

    Args:
        task: the token and label side (a registered serializable object, or its serialized dict):
            `num_words`, `num_chars`, `num_casings`, `labels` (K names), `constraint_scheme` (or None),
            `names(tag ids) -> tag names`,
            `encode_tokens(token lists) -> inputs`, `prediction_batches(token lists, size) -> (indices, inputs)`,
            `decode_with(run_batch, token lists, size) -> tag ids per sentence`
            and `to_output(tag names) -> tags`.
        words, encoder, head: the `words`, `encoder` and `head` configs as dicts.
        seed: seeds word dropout.
        jit_compile: "auto", True or False: whether `tag` decodes under XLA (seqlab.model.jit).
        encoder_layer: the encoder itself (or its serialized dict), where building it from the config would
            read files: a transformer's backbone is loaded from its preset once, then saved with the tagger.
    """

    def __init__(self, task, words, encoder, head, seed=1, jit_compile="auto", encoder_layer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(task, dict):  # from a saved config (seqlab.saving registered the task's class)
            task = keras.saving.deserialize_keras_object(task)
        else:  # saved as `seqlab>TaggingTask`, as every seqlab file names it; the task layer imports no Keras
            keras.saving.register_keras_serializable(package="seqlab")(type(task))
        self.task = task
        self.words_config, self.encoder_config, self.head_config, self.seed = dict(words), dict(encoder), dict(head), seed
        self.jit_setting = jit_setting(jit_compile)
        self.features = WordFeatures(task.num_words, task.num_chars, words, num_casings=task.num_casings, seed=seed,
                                     unk_id=getattr(task, "unk_id", 1), num_fixed=getattr(task, "num_fixed_words", 0),
                                     name="features")
        if isinstance(encoder_layer, dict):
            encoder_layer = keras.saving.deserialize_keras_object(encoder_layer)
        self.encoder = encoder_layer if encoder_layer is not None else build_encoder(encoder)
        self.reads_inputs = bool(getattr(self.encoder, "reads_inputs", False))
        self.emission_layer = keras.layers.Dense(len(task.labels), name="emissions")
        self.head = build_head(head, task.labels, task.constraint_scheme, PAD_TAG)
        self.head.xla = xla_inside_graphs(self.jit_setting, self.encoder_config["name"])
        self._decoder = None
        self._scorers: dict = {}  # compiled functions: tag_scored's "marginals" and one per n-best k; dev's "loss_and_decode"

    # -------------------------------------------------------------- building
    def build(self, input_shape=None):
        """Create every weight from the configs alone (input_shape is ignored). Building twice is a no-op."""
        if self.built:
            return
        self.features.build()
        self.encoder.build((None, None, self.features.output_dim))
        self.emission_layer.build((None, None, self.encoder.output_dim))
        self.head.build()
        self.built = True

    def get_build_config(self):
        return {"configs_only": True}  # non-empty, so load_model calls build_from_config

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        config = {"task": keras.saving.serialize_keras_object(self.task), "words": self.words_config,
                  "encoder": self.encoder_config, "head": self.head_config, "seed": self.seed,
                  "jit_compile": self.jit_setting, "name": self.name}
        if self.reads_inputs:  # a pretrained encoder: its architecture travels with the file, not its preset's path
            config["encoder_layer"] = keras.saving.serialize_keras_object(self.encoder)
        return config

    # -------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        """{"words": [B, T], "chars": [B, T, W], "casing": [B, T]} (a transformer's also "subwords",
        "piece_word": [B, NW, W']) -> emission scores float [B, T, K]."""
        mask = inputs["words"] > 0  # [B, T]
        x = self.features(inputs, training=training) if self.features.output_dim else None  # [B, T, D]
        if self.reads_inputs:
            h = self.encoder(inputs, features=x, mask=mask, training=training)  # [B, T, H (+ D)]
        else:
            h = self.encoder(x, mask=mask, training=training)  # [B, T, H]
        return self.emission_layer(h)  # [B, T, K]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.head.loss(y_pred, y, x["words"] > 0)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def decode_inputs(self, x):
        """inputs -> tag ids int32 [B, T], PAD_TAG at padding (the head's decoder on the emissions)."""
        return self.head.decode(self(x, training=False), x["words"] > 0)

    def loss_and_decode_inputs(self, x, y):
        """(inputs, gold tag ids int32 [B, T]) -> (the batch's loss float32 [], decoded tag ids int32 [B, T]):
        Keras' evaluation loss and the decoder from one forward pass, dropout off."""
        emissions = self(x, training=False)
        return self.compute_loss(x, y, emissions, training=False), self.head.decode(emissions, x["words"] > 0)

    def score_inputs(self, x):
        """inputs -> (tag ids int32 [B, T], p(y_t = k | x) float32 [B, T, K]): the decoded path and every
        token's probabilities (the CRF's exact marginals, or the softmax)."""
        emissions, mask = self(x, training=False), x["words"] > 0
        return self.head.decode(emissions, mask), self.head.probabilities(emissions, mask)

    def nbest_inputs(self, x, k: int):
        """inputs -> the k most probable paths int32 [B, k, T] and their log-probabilities float32 [B, k]."""
        return self.head.nbest_log_probs(self(x, training=False), k, x["words"] > 0)

    def predict_step(self, *args):
        """Keras' predict step: decoded tag ids. Its signature differs by backend (see backend.predict_step)."""
        return predict_step(self, *args)

    def uses_xla(self, phase: str) -> bool:
        """Whether `phase` ("train", "dev" scoring or "decode") runs under XLA, as trainer.jit_compile resolves here."""
        return use_xla(self.jit_setting, self.encoder_config["name"], self.head_config["name"], phase)

    # -------------------------------------------------------------- tagging
    def tag_ids(self, sentences: list[list[str]], batch_size: int = 256) -> list[np.ndarray]:
        """Decoded tag ids per sentence (int32 [len(sentence)] each), in input order; nothing is truncated.
        Batches of similar length, at most `batch_size` sentences and the task's bound on padded tokens."""
        if self._decoder is None:
            self._decoder = compiled_decoder(self, self.uses_xla("decode"))
        return self.task.decode_with(self._decoder, sentences, batch_size)

    def evaluate_loss(self, data) -> float:
        """The mean loss over `data`, what Keras' evaluate reads (dev: seqlab.model.backend.as_dataset of
        unshuffled seqlab.training.batches.BucketedBatches), with the weights as they are, dropout off."""
        return float(self.evaluate(data, verbose=0, return_dict=True)["loss"])

    def evaluate_and_tag_ids(self, batches, sentences: list[list[str]]) -> tuple[float, list[np.ndarray]]:
        """Dev scoring's one pass: unshuffled seqlab.training.batches.BucketedBatches of `sentences` (tokens and
        gold tags) -> (the mean loss, as `evaluate_loss` gives it: each batch's loss weighted by its size, and
        the decoded tag ids per sentence, int32 [n] each, in input order, as `tag_ids` gives them).

        TensorFlow: one forward pass per batch gives both (MiniLM on 600 CoNLL-2003 dev sentences: 4.3 s, where
        evaluate then the decoder took 11-15 s). Other backends: Keras' evaluate, then `tag_ids` (their own
        compiled steps)."""
        if not is_tensorflow():
            return self.evaluate_loss(as_dataset(batches)), self.tag_ids(sentences, batches.batch_size)
        if "loss_and_decode" not in self._scorers:
            self._scorers["loss_and_decode"] = compiled_function(self, self.loss_and_decode_inputs,
                                                                 self.uses_xla("dev"), tags=True)
        run = self._scorers["loss_and_decode"]
        total, count = 0.0, 0
        out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(sentences)
        for i in range(len(batches)):
            x, y = batches[i]
            loss, ids = run(x, y)  # float, int32 [B, T (padded)]
            total, count = total + float(loss) * len(y), count + len(y)
            for row, s in enumerate(batches.batches[i]):
                out[s] = ids[row, : len(sentences[s])]
        return total / max(count, 1), out

    def tag_names(self, sentences: list[list[str]], batch_size: int = 256) -> list[list[str]]:
        """Tag names per sentence as the model decoded them (the training scheme, e.g. BIOES)."""
        return [self.task.names(ids) for ids in self.tag_ids(sentences, batch_size)]

    def tag_scored(self, sentences: list[list[str]], batch_size: int = 256, nbest: int = 0) -> list[Scored]:
        """Per sentence: the decoded ids int32 [n], the probabilities float32 [n, K] and, with `nbest`, the
        k best paths int32 [k, n] with their log-probabilities [k] (seqlab.model.confidence.Scored)."""
        if "marginals" not in self._scorers:
            self._scorers["marginals"] = compiled_function(self, self.score_inputs, self.uses_xla("decode"))
        if nbest and nbest not in self._scorers:
            self._scorers[nbest] = compiled_function(self, lambda x: self.nbest_inputs(x, nbest), self.uses_xla("decode"))
        out: list[Scored] = [Scored(np.zeros(0, np.int32), np.zeros((0, len(self.task.labels)), np.float32))] * len(sentences)
        for idx, inputs in self.task.prediction_batches(sentences, batch_size):
            ids, probs = self._scorers["marginals"](inputs)  # [B, T], [B, T, K]
            paths, log_probs = self._scorers[nbest](inputs) if nbest else (None, None)  # [B, k, T], [B, k]
            for row, i in enumerate(idx):
                n = len(sentences[i])
                out[i] = Scored(ids[row, :n], probs[row, :n],
                                None if paths is None else paths[row, :, :n], None if paths is None else log_probs[row])
        return out

    def tag(self, sentences: list[list[str]], batch_size: int = 256, scores: bool = False, nbest: int = 0):
        """Token lists in, tag lists out (the task's output scheme: IOB2 for span tasks).

        With `scores` or `nbest`, one dict per sentence instead: {"tags"}, with `scores` also each token's
        probability of its tag ("scores") and, for span tasks, the entities with their confidence ("entities":
        type, start, end (exclusive), text, score = the lowest of its tokens' scores); with `nbest=k` the k
        most probable tag sequences with their probabilities ("nbest"). Rules: docs/guide.md#confidence.
        """
        sentences = [list(s) for s in sentences]
        if not scores and not nbest:
            return [self.task.to_output(tags) for tags in self.tag_names(sentences, batch_size)]
        if int(nbest) < 0:
            raise ValueError(f"nbest={nbest} is invalid: the number of best tag sequences, 0 for none")
        scored = self.tag_scored(sentences, batch_size, int(nbest))
        return [scored_sentence(self.task, tokens, s, scores) for tokens, s in zip(sentences, scored)]


def build_tagger(task, words: dict, encoder: dict, head: dict, seed: int = 1, word_vectors=None,
                 jit_compile="auto") -> Tagger:
    """Create and build a Tagger so that its weights exist.

    `word_vectors`: pretrained word embeddings: float [num_words, dim] (the trained table's start), or a
    seqlab.data.vectors.Embeddings (its `trained` table, and its `fixed` one for the task's extra words).
    """
    model = Tagger(task, words, encoder, head, seed=seed, jit_compile=jit_compile, name="tagger")
    model.build()
    if word_vectors is not None:
        trained = getattr(word_vectors, "trained", word_vectors)
        model.features.embed.embeddings.assign(trained)
        fixed = getattr(word_vectors, "fixed", None)
        if fixed is not None and len(fixed):
            model.features.fixed_embedding.assign(fixed)
    return model
