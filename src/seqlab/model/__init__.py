"""Model: word features -> encoder -> emission scores -> head (softmax or CRF)."""

from seqlab.model.tagger import Tagger, build_tagger, input_signature

__all__ = ["Tagger", "build_tagger", "input_signature"]
