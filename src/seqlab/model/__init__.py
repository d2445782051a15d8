"""Model: word features -> encoder -> emission scores -> head (softmax or CRF)."""

from seqlab.model.tagger import Tagger, build_tagger

__all__ = ["Tagger", "build_tagger"]
