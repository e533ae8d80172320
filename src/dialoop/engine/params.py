"""Generation parameters, validated once where they are made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dialoop.errors import InvalidInputError

__all__ = ["GenerationParams"]

MAX_STOP_SEQUENCES = 8


@dataclass(frozen=True)
class GenerationParams:
    """How to sample. ``temperature=0`` is greedy decoding, which is deterministic."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    max_tokens: int = 512
    stop: tuple[str, ...] = field(default=())
    seed: int | None = None
    repeat_penalty: float = 1.0  # 1.0: no penalty

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # a single stop string is a common slip
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        _check(_number(self.temperature) and 0 <= self.temperature <= 2,
               f"temperature must be between 0 and 2 (0 = greedy), got {self.temperature!r}")
        _check(_number(self.top_p) and 0 < self.top_p <= 1,
               f"top_p must be in (0, 1] (1 = off), got {self.top_p!r}")
        _check(_integer(self.top_k) and self.top_k >= 0,
               f"top_k must be a whole number >= 0 (0 = off), got {self.top_k!r}")
        _check(_integer(self.max_tokens) and self.max_tokens >= 1,
               f"max_tokens must be a whole number >= 1, got {self.max_tokens!r}")
        _check(_number(self.repeat_penalty) and 0 < self.repeat_penalty <= 2,
               f"repeat_penalty must be in (0, 2] (1 = off), got {self.repeat_penalty!r}")
        _check(self.seed is None or (_integer(self.seed) and 0 <= self.seed < 2**32),
               f"seed must be a whole number in [0, 2**32), got {self.seed!r}")
        _check(len(self.stop) <= MAX_STOP_SEQUENCES,
               f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(self.stop)}")
        _check(all(isinstance(s, str) and s for s in self.stop),
               "stop sequences must be non-empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _integer(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(f"Invalid generation parameter: {message}")
