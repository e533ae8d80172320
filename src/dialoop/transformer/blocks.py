"""A Transformer block: attention then a feed-forward network, each around a residual.

Pre-norm (GPT-2 onwards, Llama): the input of each sub-layer is normalised, its output
is *added* to the residual stream, which itself is never normalised on the way:

    x = x + SelfAttention(Norm(x))
    x = x + CrossAttention(Norm(x), memory)     (decoder of an encoder–decoder only)
    x = x + FeedForward(Norm(x))

The residual stream carries gradients straight from the loss to every layer, which is
why deep pre-norm stacks train without warm-up tricks the original post-norm needed.

Norm is RMSNorm, x / √(mean(x²) + ε) · g (LayerNorm without the mean and the bias), and
the feed-forward network is SwiGLU, W_down (SiLU(W_gate x) ⊙ W_up x): the layout of
Llama, so that a decoder built of these blocks exports to transformers unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dialoop.transformer.attention import MultiHeadAttention
from dialoop.transformer.config import TransformerConfig
from dialoop.transformer.positions import Rotary

__all__ = ["Block", "FeedForward", "RMSNorm"]


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()  # the mean of squares in float32, as transformers does
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, C)
        return self.weight * x.to(dtype)


class FeedForward(nn.Module):
    """SwiGLU: a gated two-layer network applied to each position on its own."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, C) -> (B, T, d_ff) -> (B, T, C)
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """One pre-norm block. ``causal``: a decoder's masked self-attention; ``cross``: also
    attend to an encoder's output (the decoder of an encoder–decoder)."""

    def __init__(self, config: TransformerConfig, *, causal: bool, cross: bool = False) -> None:
        super().__init__()
        C, eps, fast = config.d_model, config.norm_eps, config.fast_attention
        self.attn_norm = RMSNorm(C, eps)
        self.attn = MultiHeadAttention(C, config.n_head, causal=causal, fast=fast)
        self.cross_norm = RMSNorm(C, eps) if cross else None
        self.cross = MultiHeadAttention(C, config.n_head, fast=fast) if cross else None
        self.mlp_norm = RMSNorm(C, eps)
        self.mlp = FeedForward(C, config.d_ff)

    def forward(self, x: torch.Tensor, *, padding: torch.Tensor | None = None,
                rope: Rotary | None = None, memory: torch.Tensor | None = None,
                memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C); padding: (B, T) True at padding; memory: (B, S, C) the encoder's
        output; memory_padding: (B, S)."""
        x = x + self.attn(self.attn_norm(x), padding=padding, rope=rope)
        if self.cross is not None and self.cross_norm is not None:
            assert memory is not None, "a cross-attention block needs the encoder's output"
            x = x + self.cross(self.cross_norm(x), memory, padding=memory_padding)
        return x + self.mlp(self.mlp_norm(x))
