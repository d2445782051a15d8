"""The linear-chain CRF for Keras 3 and the tag constraints it can enforce.

    from seqlab.crf import CRF, allowed_transitions

recursions.py: the forward algorithm, Viterbi, forward-backward and k-best Viterbi, as pure functions of
emissions, mask and scores; layer.py: the Keras layer (weights, constraints, checks); xla.py: the loss
and Viterbi compiled by XLA with the weights as arguments; torch_loops.py: the two recursions as plain
PyTorch loops; constraints.py: allowed transitions read from label strings; buckets.py: padding to a few
shapes. Nothing here imports seqlab's corpus code.
"""

from seqlab.crf.constraints import allowed_transitions, parse_label
from seqlab.crf.layer import CRF

__all__ = ["CRF", "allowed_transitions", "parse_label"]
