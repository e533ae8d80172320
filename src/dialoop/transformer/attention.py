"""Attention, written out.

Scaled dot-product attention: every query position i takes a weighted average of the
value vectors, weighted by how well its query matches each key:

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Dividing by √d_k keeps the scores' variance near 1 whatever the head size, so the
softmax does not saturate (its gradients vanish when one score dwarfs the others).

Multi-head attention runs H such attentions side by side on H slices of width
d_k = C / H, each with its own learned projections, and mixes the results:

    MultiHead(x) = concat(head_1, …, head_H) W_o,  head_h = Attention(x W_q^h, x W_k^h, x W_v^h)

so different heads can look at different things (the previous word, the subject …).

Masks here are boolean and True means *may not attend*. The causal mask of a decoder
blocks every key j > i (the future), and leaves j = i (the token itself) visible; a
padding mask blocks the keys that are padding. Blocked scores become -inf, so their
softmax weight is exactly 0.

The engine knows nothing about tokens or positions beyond what it is given: RoPE, if
any, is passed in by the model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dialoop.transformer.positions import Rotary

__all__ = ["MultiHeadAttention", "causal_mask", "scaled_dot_product_attention"]


def causal_mask(T: int, S: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) booleans, True where key j lies in query i's future (j > i)."""
    i = torch.arange(T, device=device)[:, None]  # (T, 1) query positions
    j = torch.arange(T if S is None else S, device=device)[None, :]  # (1, S) key positions
    return j > i


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q Kᵀ / √d_k) V, and the attention weights.

    q: (..., T, d_k), k: (..., S, d_k), v: (..., S, d_v); mask: booleans broadcastable to
    (..., T, S), True where a query may not attend to a key. Returns the output
    (..., T, d_v) and the weights (..., T, S), each row of which sums to 1.
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., T, S), rows sum to 1
    return weights @ v, weights  # (..., T, d_v)


class MultiHeadAttention(nn.Module):
    """Self-attention (``context`` None) or cross-attention (queries from x, keys and
    values from ``context``, e.g. the encoder's output)."""

    def __init__(self, d_model: int, n_head: int, *, causal: bool = False,
                 fast: bool = False) -> None:
        super().__init__()
        self.n_head, self.causal, self.fast = n_head, causal, fast
        # No biases (as in Llama): the exported decoder maps one-to-one.
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *,
                padding: torch.Tensor | None = None, rope: Rotary | None = None) -> torch.Tensor:
        """x: (B, T, C); context: (B, S, C) or None; padding: (B, S) True at padding keys."""
        B, T, C = x.size()  # batch, time (queries), channels
        source = x if context is None else context
        S = source.size(1)  # time of the keys and values
        H, D = self.n_head, C // self.n_head  # heads, head dimension d_k
        # project, then split the channels into heads: (B, T, C) -> (B, T, H, D) -> (B, H, T, D)
        q = self.q(x).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = self.k(source).view(B, S, H, D).transpose(1, 2)  # (B, H, S, D)
        v = self.v(source).view(B, S, H, D).transpose(1, 2)  # (B, H, S, D)
        if rope is not None:
            q, k = rope(q), rope(k)
        mask = None
        if self.causal:
            mask = causal_mask(T, S, device=x.device)  # (T, S), broadcast over B and H
        if padding is not None:
            pad = padding[:, None, None, :]  # (B, 1, 1, S), broadcast over heads and queries
            mask = pad if mask is None else mask | pad  # (B, 1, T, S)
        if self.fast:
            y = self._fused(q, k, v, mask)
        else:
            y, _ = scaled_dot_product_attention(q, k, v, mask)  # (B, H, T, D)
        # put the heads side by side again: (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.o(y)

    def _fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
        """The same attention through torch's fused kernel (its boolean masks mean *may*
        attend, the opposite of ours)."""
        if self.causal and mask is not None and mask.dim() == 2:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask)
