"""Latency of tagging one sentence at a time, as a service answering single requests sees it.

    latencies_ms(lambda s: tagger.tag_ids([s], 1), sentences[:100])  -> float [n] milliseconds
    summary(ms) -> {"latency_ms_p50": ..., "latency_ms_p95": ...}

Each sentence is tagged twice and the second pass is timed: the first compiles whatever the backend
compiles per shape (XLA and JAX: once per bucket of lengths), which a running service has done long before.
Encoding the strings and decoding the tags are inside the timing, as in `tag`.
"""

from __future__ import annotations

import time

import numpy as np


def latencies_ms(tag_one, sentences: list[list[str]]) -> np.ndarray:
    """Milliseconds `tag_one(sentence)` took for each sentence, on the second of two passes."""
    for sentence in sentences:
        tag_one(sentence)
    out = np.empty(len(sentences))
    for i, sentence in enumerate(sentences):
        started = time.perf_counter()
        tag_one(sentence)
        out[i] = (time.perf_counter() - started) * 1000
    return out


def summary(ms: np.ndarray) -> dict[str, float]:
    """The median and the 95th percentile."""
    return {"latency_ms_p50": float(np.percentile(ms, 50)), "latency_ms_p95": float(np.percentile(ms, 95))}
