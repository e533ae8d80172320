"""Where a token is: three ways to tell the model a token's position.

Attention by itself is blind to order: permute the tokens and each output is permuted
the same way. So the position goes in either by *adding* a vector to each token's
embedding (sinusoidal, learned) or by *rotating* the queries and keys (RoPE).

- Sinusoidal (Vaswani et al., 2017), fixed, nothing learned:
      PE[pos, 2i]   = sin(pos / 10000^(2i/C))
      PE[pos, 2i+1] = cos(pos / 10000^(2i/C))
  Each pair of dimensions is a clock of its own frequency; PE[pos + k] is a linear
  function (a rotation) of PE[pos], which makes relative offsets easy to learn.
- Learned (BERT, GPT-2): a table of block_size vectors trained like token embeddings.
- RoPE (Su et al., 2021; Llama): each pair of a query's (or key's) dimensions is rotated
  by the angle pos * theta_i, so q·k depends on the positions only through their
  difference. Nothing is added to the embeddings. The pairs are (x[i], x[i + D/2]), the
  "rotate half" layout of Llama in transformers, so exported weights mean the same there.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LearnedPositions", "Rotary", "SinusoidalPositions", "sinusoidal_table"]


def sinusoidal_table(n_positions: int, d_model: int) -> torch.Tensor:
    """The (n_positions, d_model) table of sinusoidal position encodings."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    # 1 / 10000^(2i/C) for i = 0 … C/2-1, computed in log space
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                          * (-math.log(10000.0) / d_model))  # (ceil(C/2),)
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * frequency)  # even dimensions
    table[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]  # odd dimensions
    return table


class SinusoidalPositions(nn.Module):
    """Adds the fixed sinusoidal encoding of each position (a buffer, not a parameter)."""

    def __init__(self, block_size: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(block_size, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()  # batch, time, channels
        return x + self.table[:T]  # (T, C) broadcast over the batch


class LearnedPositions(nn.Module):
    """Adds a trained vector per position."""

    def __init__(self, block_size: int, d_model: int) -> None:
        super().__init__()
        self.table = nn.Embedding(block_size, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        return x + self.table(torch.arange(T, device=x.device))  # (T, C) broadcast


class Rotary(nn.Module):
    """Rotates queries and keys by their position (RoPE); applied inside attention."""

    def __init__(self, block_size: int, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        # theta_i = theta^(-2i/D) for i = 0 … D/2-1, the same floats transformers' Llama uses
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float()
                                    / head_dim))  # (D/2,)
        angle = torch.outer(torch.arange(block_size).float(), inv_freq)  # (T_max, D/2)
        angle = torch.cat((angle, angle), dim=-1)  # (T_max, D): pair i and i + D/2 share it
        self.register_buffer("cos", angle.cos(), persistent=False)
        self.register_buffer("sin", angle.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, T, D = x.size()  # batch, heads, time, head dimension
        half = D // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)  # (B, H, T, D)
        # (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) for each pair (x[i], x[i + D/2])
        return x * self.cos[:T] + rotated * self.sin[:T]
