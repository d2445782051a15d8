"""Decoders for exported emission networks, in NumPy: what the wrapper runs beside an ONNX model.

    viterbi(emissions [B, T, K], lengths [B], transitions [K, K], start [K], end [K]) -> int32 [B, T]
    argmax(emissions [B, T, K], lengths [B]) -> int32 [B, T]

Both write -1 past each row's length. The CRF's scores come with its constraints applied
(-inf where the tag scheme forbids a transition: seqlab.crf's `decode_scores`), so the paths are the
ones its own Viterbi decodes; ties go to the lowest tag id, as there.
"""

from __future__ import annotations

import numpy as np

PAD = -1


def argmax(emissions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The softmax head's decoder: each token's best tag."""
    ids = emissions.argmax(-1).astype(np.int32)
    ids[np.arange(emissions.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = PAD
    return ids


def viterbi(emissions: np.ndarray, lengths: np.ndarray, transitions: np.ndarray, start: np.ndarray,
            end: np.ndarray) -> np.ndarray:
    """The linear-chain CRF's best paths, batched: one step per time position, vectorised over rows and tags."""
    emissions = np.asarray(emissions, np.float32)
    batch, time, k = emissions.shape
    lengths = np.asarray(lengths)
    out = np.full((batch, time), PAD, np.int32)
    if time == 0 or batch == 0:
        return out
    score = start[None, :] + emissions[:, 0]  # [B, K]
    back = np.zeros((batch, time, k), np.int32)
    for t in range(1, time):
        candidates = score[:, :, None] + transitions[None]  # [B, K from, K to]
        best_from = candidates.argmax(1)  # [B, K]
        step = np.take_along_axis(candidates, best_from[:, None, :], 1)[:, 0] + emissions[:, t]
        live = (t < lengths)[:, None]
        score = np.where(live, step, score)
        back[:, t] = np.where(live, best_from, np.arange(k)[None, :])  # past the end: stay on the same tag
    last = (score + end[None, :]).argmax(1)  # [B]
    tag = last
    for t in range(time - 1, -1, -1):
        out[:, t] = tag
        tag = back[np.arange(batch), t, tag]
    out[np.arange(time)[None, :] >= lengths[:, None]] = PAD
    return out
