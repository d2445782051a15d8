"""Writing a tagger out as a SavedModel or an ONNX model that tags raw tokens as its .keras file does.

    export_tagger(tagger, "savedmodel", "exported/")   # TensorFlow graph: the whole tagger, Viterbi included
    export_tagger(tagger, "onnx", "exported/")          # the emission network; the wrapper decodes in NumPy

Why the ONNX model holds the emission network only: tf2onnx (1.17, opset 17) has no ONNX ops for the
Bitcast and BitwiseAnd that TensorFlow's argmax and the CRF's loops compile to, so a whole decode does not
convert. The emission network (features, encoder, emission layer: [B, T] ids -> [B, T, K] scores) does,
recurrent encoders included, and the CRF's Viterbi is a short NumPy loop (seqlab.export.decoding) over its
decode scores, saved beside it in crf.npz with the tag-scheme constraints applied.

The folder appears whole or not at all: it is written under a temporary name and renamed at the end.
Needs the TensorFlow backend (both formats start from a TensorFlow graph).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np

from seqlab.export.runtime import META, ExportError
from seqlab.model.backend import input_signature

FORMATS = ("savedmodel", "onnx")
ONNX_OPSET = 17


def export_tagger(tagger, fmt: str, out, source: str = "") -> Path:
    """Write `tagger` (a seqlab Tagger) in format `fmt` into the new folder `out`; returns its path."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"export runs on the TensorFlow backend (KERAS_BACKEND={keras.backend.backend()}): "
                          "unset KERAS_BACKEND; a tagger trained on any backend loads there")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty folder: choose a new --out")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        from importlib.metadata import version

        meta = {"seqlab_export": 1, "format": fmt, "seqlab_version": version("seqlab"), "keras_version": keras.__version__,
                "source": str(source), "encoder": tagger.encoder_config["name"], "head": tagger.head_config["name"],
                "task": tagger.task.get_config()}
        with plain_graphs(tagger):
            meta.update(_write_savedmodel(tagger, partial) if fmt == "savedmodel" else _write_onnx(tagger, partial))
        (partial / META).write_text(json.dumps(meta, indent=1))
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


@contextmanager
def plain_graphs(tagger):
    """The CRF traced without its XLA functions: the exported graph runs where XLA does not (TF Serving, ONNX)."""
    xla = tagger.head.xla
    tagger.head.xla = False
    try:
        yield
    finally:
        tagger.head.xla = xla


def _emissions_of(tagger):
    def emissions(x):
        """inputs -> emission scores float32 [B, T, K]."""
        return keras.ops.cast(tagger(x, training=False), "float32")

    return emissions


def _write_savedmodel(tagger, folder: Path) -> dict:
    signature = [input_signature(tagger.task.input_names)]
    archive = keras.export.ExportArchive()
    archive.track(tagger)
    archive.add_endpoint("decode", tagger.decode_inputs, input_signature=signature)
    archive.add_endpoint("emissions", _emissions_of(tagger), input_signature=signature)
    archive.write_out(str(folder / "model"), verbose=False)
    return {"decoder": "graph"}


def _write_onnx(tagger, folder: Path) -> dict:
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        raise ExportError("--format onnx needs tf2onnx and onnxruntime: pip install 'seqlab[export]'") from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    signature = [input_signature(tagger.task.input_names)]
    function = tf.function(_emissions_of(tagger), input_signature=signature, autograph=False)
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=ONNX_OPSET)
    except Exception as e:  # noqa: BLE001 - a layer tf2onnx cannot convert: one line that names it
        raise ExportError(f"the {tagger.encoder_config['name']} encoder does not convert to ONNX "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:300]}); --format savedmodel exports it") from None
    (folder / "model.onnx").write_bytes(proto.SerializeToString())
    names = set(tagger.task.input_names)
    feeds = {}
    for node in proto.graph.input:
        ours = node.name.split(":")[0].removeprefix("x_")
        if ours not in names:
            raise ExportError(f"the ONNX model has an input {node.name!r} that is none of the tagger's ({', '.join(names)})")
        feeds[node.name] = ours
    meta = {"onnx_inputs": feeds, "onnx_opset": ONNX_OPSET}
    if tagger.head_config["name"] == "crf":
        transitions, start, end = (keras.ops.convert_to_numpy(s).astype(np.float32) for s in tagger.head.decode_scores())
        np.savez(folder / "crf.npz", transitions=transitions, start=start, end=end)
        return {**meta, "decoder": "viterbi"}
    return {**meta, "decoder": "argmax"}
