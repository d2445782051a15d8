"""seqlab: experiments and sweeps for neural sequence taggers.

Stages, imported one way only:
config -> data -> model (crf, layers, tagger) -> training -> evaluation -> tracking.
`seqlab.pipeline.train(cfg)` runs them in that order.
"""

__version__ = "0.1.0"
