"""Weight initialisation schemes beyond Keras' defaults, applied to a built tagger.

    init=keras     Keras' defaults (Glorot-uniform kernels, orthogonal recurrent kernels,
                   U(-0.05, 0.05) embeddings, forget-gate bias 1, CRF scores U(-0.1, 0.1))
    init=pytorch   what NCRF++ gets from PyTorch: embeddings U(-sqrt(3 / dim), +sqrt(3 / dim))
                   (NCRF++'s random_embedding), every LSTM/GRU, convolution and dense weight and bias
                   U(-1 / sqrt(fan_in), +1 / sqrt(fan_in)) (fan_in: the units for recurrent layers,
                   as torch.nn.LSTM; a recurrent bias is the sum of PyTorch's two), CRF scores 0.

Both are seeded: the same seed gives the same weights.
"""

from __future__ import annotations

import math

import keras
import numpy as np

SCHEMES = ("keras", "pytorch")


def _uniform(rng: np.random.Generator, bound: float, shape) -> np.ndarray:
    return rng.uniform(-bound, bound, size=tuple(shape)).astype("float32")


def pytorch_init(model: keras.Model, seed: int) -> None:
    """Re-initialise every weight of a built `model` as PyTorch (and NCRF++) would."""
    from seqlab.crf import CRF

    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Embedding):
            emb = layer.embeddings
            emb.assign(_uniform(rng, math.sqrt(3.0 / emb.shape[1]), emb.shape))
        elif isinstance(layer, (keras.layers.LSTMCell, keras.layers.GRUCell)):
            bound = 1.0 / math.sqrt(layer.units)
            for weight in layer.weights:
                value = _uniform(rng, bound, weight.shape)
                if "bias" in weight.path.rsplit("/", 1)[-1]:
                    value = value + _uniform(rng, bound, weight.shape)  # b_ih + b_hh
                weight.assign(value)
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Dense)):
            kernel = layer.kernel
            bound = 1.0 / math.sqrt(int(np.prod(kernel.shape[:-1])))
            for weight in layer.weights:
                weight.assign(_uniform(rng, bound, weight.shape))
        elif isinstance(layer, CRF):
            for weight in layer.weights:
                weight.assign(np.zeros(weight.shape, "float32"))


def initialise(model: keras.Model, scheme: str, seed: int) -> None:
    """Apply `scheme` (one of SCHEMES) to a built model; "keras" leaves it as built."""
    if scheme == "pytorch":
        pytorch_init(model, seed)
    elif scheme != "keras":
        raise ValueError(f"init must be one of {', '.join(SCHEMES)}, got {scheme!r}")
