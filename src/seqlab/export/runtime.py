"""Running an exported tagger: tokens in, tags out, without the .keras file.

    tagger = seqlab.export.load("exported/")
    tagger.tag([["EU", "rejects", "German", "call"]])   # -> [["B-ORG", "O", "B-MISC", "O"]]

The folder (seqlab.export.save) holds `seqlab_export.json` (the format, the task: vocabulary, labels, tag
schemes, and the decoder), the model and, for a CRF decoded beside an ONNX model, `crf.npz`. The task
encodes the tokens exactly as the tagger does (seqlab.task.TaggingTask, which imports no Keras), in
batches of similar length, and maps the decoded ids back to the output scheme (IOB2 for span tasks).

- savedmodel: TensorFlow's loader (`tf.saved_model.load`), whose `decode` runs the whole tagger,
  Viterbi included, in one graph.
- onnx: onnxruntime runs the emission network; the CRF's Viterbi (or the softmax's argmax) runs in NumPy
  beside it (seqlab.export.decoding). TensorFlow is never imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqlab.errors import SeqlabError
from seqlab.export import decoding
from seqlab.task import TaggingTask

META = "seqlab_export.json"


class ExportError(SeqlabError):
    """An export folder that is missing or incomplete, or a model that does not export."""


class ExportedTagger:
    """An exported tagger: `tag(token_lists)` as `seqlab.model.Tagger.tag` (without scores)."""

    def __init__(self, folder: Path, meta: dict, task: TaggingTask, run_batch):
        self.folder, self.meta, self.task = folder, meta, task
        self.format = meta["format"]
        self._run_batch = run_batch  # inputs dict -> int32 ids [B, T] (-1 past each row's length)

    def tag(self, sentences: list[list[str]], batch_size: int = 256) -> list[list[str]]:
        """Token lists in, tag lists out (the task's output scheme: IOB2 for span tasks)."""
        sentences = [list(s) for s in sentences]
        return [self.task.to_output(self.task.names(ids))
                for ids in self.task.decode_with(self._run_batch, sentences, batch_size)]

    def __repr__(self) -> str:
        return f"ExportedTagger({self.format}, {self.folder}, {len(self.task.labels)} labels)"


def load(folder) -> ExportedTagger:
    """The tagger exported into `folder` (python -m experiments.export), ready to `tag`."""
    folder = Path(folder)
    path = folder / META
    if not path.exists():
        raise ExportError(f"{folder}: no {META}: not a folder written by python -m experiments.export")
    meta = json.loads(path.read_text())
    runner = {"savedmodel": _savedmodel_runner, "onnx": _onnx_runner}.get(meta.get("format"))
    if runner is None:
        raise ExportError(f"{path}: unknown format {meta.get('format')!r} (savedmodel or onnx)")
    task = TaggingTask.from_config(meta["task"])
    return ExportedTagger(folder, meta, task, runner(folder, meta, task))


def _lengths(inputs: dict) -> np.ndarray:
    return (inputs["words"] > 0).sum(1)


def _savedmodel_runner(folder: Path, meta: dict, task: TaggingTask):
    from seqlab.runtime.quiet import import_tensorflow

    tf = import_tensorflow()
    model = tf.saved_model.load(str(folder / "model"))
    names = task.input_names

    def run(inputs: dict) -> np.ndarray:
        return model.decode({n: tf.constant(inputs[n], tf.int32) for n in names}).numpy()

    return run


def _onnx_runner(folder: Path, meta: dict, task: TaggingTask):
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("an ONNX export runs with onnxruntime: pip install 'seqlab[export]'") from None
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = meta["onnx_inputs"]  # ONNX input name -> the tagger's input name
    if meta["decoder"] == "viterbi":
        with np.load(folder / "crf.npz") as crf:
            scores = crf["transitions"], crf["start"], crf["end"]
        decode = lambda e, n: decoding.viterbi(e, n, *scores)  # noqa: E731
    else:
        decode = decoding.argmax

    def run(inputs: dict) -> np.ndarray:
        (emissions,) = session.run(None, {name: inputs[ours].astype(np.int32) for name, ours in feeds.items()})
        return decode(emissions, _lengths(inputs))

    return run
