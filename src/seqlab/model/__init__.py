"""Model: word features -> encoder -> emission scores -> head (softmax or CRF).

Nothing here imports seqlab.data: the tagger reaches tokens and labels only
through the task object it is given (seqlab.task.TaggingTask).
"""

from seqlab.model.backend import input_signature
from seqlab.model.tagger import Tagger, build_tagger

__all__ = ["Tagger", "build_tagger", "input_signature"]
