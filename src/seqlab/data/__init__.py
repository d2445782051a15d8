"""Data: readers, tag schemes, splits and the vocabulary (no TensorFlow here)."""

from seqlab.data.corpus import Corpus, Sentence
from seqlab.data.sources import load_corpus

__all__ = ["Corpus", "Sentence", "load_corpus"]
