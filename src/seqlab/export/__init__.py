"""Exported taggers: a SavedModel or an ONNX model that tags raw tokens without the .keras file.

    python -m experiments.export runs:/<run id>/cnn-crf-wnut16 --format onnx --out exported/

    import seqlab.export
    seqlab.export.load("exported/").tag([["EU", "rejects", "German", "call"]])

save.py writes the folder (TensorFlow; tf2onnx for ONNX), runtime.py runs it (TensorFlow's loader, or
onnxruntime with the CRF's Viterbi in NumPy: decoding.py), cli.py is the command.
"""

from seqlab.export.runtime import ExportedTagger, ExportError, load

__all__ = ["ExportError", "ExportedTagger", "load"]
