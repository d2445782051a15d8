"""The CRF's two recursions written as plain PyTorch loops, for KERAS_BACKEND=torch.

Keras' `ops.scan` on PyTorch is a Python loop around `keras.ops` calls, and
each of those converts and checks its inputs: on CPU that overhead made the
forward algorithm and Viterbi slower than pytorch-crf. These loops compute the
same values with raw torch operations (autograd gives the gradients).
`torch.compile` was measured and made both slower (see docs/benchmarks.md), so
they run eagerly. `CRF` calls them on PyTorch only; every other backend, and
`marginals` / `nbest` here too, use the `keras.ops` code in layer.py.
"""

from __future__ import annotations

import torch


def forward(emissions, mask, trans, start):
    """Forward variables: (alpha at each row's last token [B, K], all alphas [T, B, K]).

    emissions float [B, T, K], mask bool [B, T] (T >= 2), trans [K, K] (from, to), start [K].
    """
    exp_trans = torch.exp(trans - trans.max(dim=0, keepdim=True).values)  # [K, K], columns max 1
    shift = trans.max(dim=0).values  # [K]
    alpha = start + emissions[:, 0]  # [B, K]
    alphas = [alpha]
    for t in range(1, emissions.shape[1]):
        top = alpha.max(dim=1, keepdim=True).values  # [B, 1]
        summed = torch.exp(alpha - top) @ exp_trans  # [B, K]
        nxt = torch.log(torch.clamp(summed, min=1e-37)) + top + shift + emissions[:, t]
        alpha = torch.where(mask[:, t, None], nxt, alpha)
        alphas.append(alpha)
    return alpha, torch.stack(alphas)


def viterbi(emissions, mask, trans, start, end):
    """Best paths int32 [B, T] (padding positions repeat the last real tag) and their scores [B].

    trans, start, end hold -inf where a transition is forbidden.
    """
    batch, time, k = emissions.shape
    keep = torch.arange(k, device=emissions.device).expand(batch, k)  # [B, K]: padding keeps the tag
    score = start + emissions[:, 0]  # [B, K]
    backs = []
    for t in range(1, time):
        best, prev = (score[:, :, None] + trans[None]).max(dim=1)  # [B, K(to)]: best previous tag
        real = mask[:, t, None]
        score = torch.where(real, best + emissions[:, t], score)
        backs.append(torch.where(real, prev, keep))
    best, last = (score + end).max(dim=1)  # [B]
    tags = [last]
    for back in reversed(backs):
        last = back.gather(1, last[:, None]).squeeze(1)
        tags.append(last)
    return torch.stack(tags[::-1], dim=1).to(torch.int32), best
