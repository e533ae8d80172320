"""The shape of a model: one frozen dataclass that checks itself and says how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from dialoop.errors import ConfigError

__all__ = ["Position", "TransformerConfig"]

Position = Literal["rope", "learned", "sinusoidal"]


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int
    block_size: int = 128  # the longest sequence the model sees (positions 0 … block_size-1)
    n_layer: int = 4  # blocks per stack (the encoder–decoder has two stacks of n_layer)
    n_head: int = 4
    d_model: int = 128  # the width of the residual stream, C in the shape comments
    d_ff: int = 512  # the hidden width of the feed-forward network
    position: Position = "rope"
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    pad_id: int = 0
    # False: attention as written out in attention.py (the reference the tests check);
    # True: torch's fused scaled_dot_product_attention, same maths, faster.
    fast_attention: bool = False

    def __post_init__(self) -> None:
        problems = [
            (self.vocab_size < 2, f"vocab_size is {self.vocab_size}: it must be at least 2"),
            (self.block_size < 2, f"block_size is {self.block_size}: it must be at least 2"),
            (self.n_layer < 1 or self.n_head < 1, "n_layer and n_head must be at least 1"),
            (self.d_model % self.n_head != 0,
             f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head}): "
             f"try d_model={self.n_head * max(1, round(self.d_model / self.n_head))}"),
            (self.position == "rope" and (self.d_model // max(self.n_head, 1)) % 2 != 0,
             "RoPE rotates pairs of dimensions: d_model / n_head must be even"),
            (self.position not in ("rope", "learned", "sinusoidal"),
             f"position {self.position!r}: choose rope, learned or sinusoidal"),
        ]
        for bad, message in problems:
            if bad:
                raise ConfigError(f"Invalid transformer config: {message}.")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
