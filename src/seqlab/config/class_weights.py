"""Class weights for the heads' losses: `head.class_weights=balanced` or a mapping such as `{O: 0.5, PER: 2}`.

`resolve` turns the config into one weight per label (the head's K labels, in the training scheme), which
the head keeps in its config (and so in the .keras file):

- `balanced`: w_k = N / (K' * n_k), with n_k the training tokens tagged k, N their total and K' the labels
  seen in training (scikit-learn's rule): the average weight over the training tokens is 1.
- a mapping: keys are tags (`B-PER`, `O`) or entity types (`PER`: every tag of that type); the rest weigh 1.

How each head uses them (seqlab.model.heads):

- softmax: the weighted cross-entropy, sum_t w[y_t] * CE_t over the batch's real tokens, divided by their count.
- CRF: softmax-margin training (Gimpel & Smith 2010): log Z is computed over emissions raised by a cost
  w[y_t] at every tag but the gold one, so each wrong path is penalised by the summed weights of the
  tokens it gets wrong, and a rare type's tokens must win by a wider margin. The gold path's score is
  unchanged, the loss stays an exact forward-algorithm computation (XLA path included) and decoding is
  the plain Viterbi. With all weights 0 it is the plain negative log-likelihood.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from seqlab.errors import ConfigError

EXPECTED = "balanced, or a mapping of tags or entity types to weights > 0, e.g. {O: 0.5}"


def check_spec(spec) -> None:
    """Refuse a malformed head.class_weights in one line (the labels are checked later, against the data)."""
    if spec is None or spec == "balanced":
        return
    if isinstance(spec, Mapping):
        values = list(spec.values())
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        values = list(spec)
    else:
        raise ConfigError(f"config key head.class_weights={spec!r} is invalid: expected {EXPECTED}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"config key head.class_weights has the weight {value!r}: expected {EXPECTED}")


def resolve(spec, labels: Sequence[str], train_tags: Sequence[Sequence[str]]) -> list[float] | None:
    """One weight per label (float list [K]), or None without weights. `train_tags`: the training tags in the
    training scheme (for `balanced`). A list of K weights (a saved model's) is returned as it is."""
    check_spec(spec)
    if spec is None:
        return None
    labels = list(labels)
    if spec == "balanced":
        counts = Counter(t for tags in train_tags for t in tags)
        seen = [k for k in labels if counts[k]]
        total = sum(counts[k] for k in seen)
        return [total / (len(seen) * counts[k]) if counts[k] else 1.0 for k in labels]
    if not isinstance(spec, Mapping):
        if len(spec) != len(labels):
            raise ConfigError(f"head.class_weights has {len(spec)} weights for {len(labels)} tags ({', '.join(labels)})")
        return [float(w) for w in spec]
    weights = dict.fromkeys(labels, 1.0)
    for key, value in spec.items():
        key = str(key)
        matched = [k for k in labels if k == key or k.partition("-")[2] == key and k[:2] in ("B-", "I-", "E-", "S-")]
        if not matched:
            types = sorted({k.partition("-")[2] for k in labels if "-" in k})
            raise ConfigError(f"head.class_weights names {key!r}, which is neither a tag nor an entity type of the "
                              f"training data (tags: {', '.join(labels)}" + (f"; types: {', '.join(types)})" if types else ")"))
        for k in matched:
            weights[k] = float(value)
    return [weights[k] for k in labels]
