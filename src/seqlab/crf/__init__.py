"""The linear-chain CRF for Keras 3 and the tag constraints it can enforce.

    from seqlab.crf import CRF, allowed_transitions

Nothing here imports seqlab's corpus code: constraints are read from the
label strings (`constraints.py`), the mathematics is in `layer.py`.
"""

import seqlab
from seqlab.crf.constraints import allowed_transitions, parse_label
from seqlab.crf.layer import CRF

seqlab.register_if_deferred()  # when `from seqlab.crf import CRF` was this process's first import of Keras

__all__ = ["CRF", "allowed_transitions", "parse_label"]
