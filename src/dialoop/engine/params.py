"""Generation parameters, validated once where they are made."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from dialoop.errors import InvalidInputError

__all__ = ["GenerationParams"]

MAX_STOP_SEQUENCES = 8
MAX_LOGPROBS = 20  # alternatives per token, as OpenAI allows
MAX_LOGIT_BIAS = 300  # entries, as OpenAI allows
MAX_GRAMMAR_CHARS = 256 * 1024  # the same bound as dialoop.engine.grammar


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
    # GBNF (llama.cpp grammar syntax) the whole answer must match; see engine.grammar
    grammar: str | None = None
    # None: off; k: each answer token's log-probability and its k most likely alternatives
    logprobs: int | None = None
    # OpenAI's: logit -= count * frequency_penalty + (count > 0) * presence_penalty,
    # count = times the token occurs in the answer so far
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # (token id, bias added to its logit), sorted by id; a dict {id: bias} is accepted
    logit_bias: tuple[tuple[int, float], ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # a single stop string is a common slip
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "logit_bias", _logit_bias(self.logit_bias))
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
        _check(self.grammar is None or (isinstance(self.grammar, str) and self.grammar.strip()),
               "grammar must be a non-empty GBNF string (or None for no grammar)")
        _check(self.grammar is None or len(self.grammar) <= MAX_GRAMMAR_CHARS,
               f"grammar must have at most {MAX_GRAMMAR_CHARS} characters")
        _check(self.logprobs is None
               or (_integer(self.logprobs) and 0 <= self.logprobs <= MAX_LOGPROBS),
               f"logprobs must be None (off) or a whole number of alternatives in "
               f"[0, {MAX_LOGPROBS}], got {self.logprobs!r}")
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            _check(_number(value) and -2 <= value <= 2,
                   f"{name} must be between -2 and 2 (0 = off), got {value!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _logit_bias(value: object) -> tuple[tuple[int, float], ...]:
    """``value`` ({id: bias} or pairs) as pairs sorted by token id, each checked."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = list(value)
    else:
        raise InvalidInputError(
            "Invalid generation parameter: logit_bias must map token ids to biases, "
            f"got {type(value).__name__}")
    _check(len(pairs) <= MAX_LOGIT_BIAS,
           f"logit_bias may name at most {MAX_LOGIT_BIAS} tokens, got {len(pairs)}")
    out: dict[int, float] = {}
    for pair in pairs:
        _check(isinstance(pair, list | tuple) and len(pair) == 2,
               f"logit_bias entries must be (token id, bias) pairs, got {pair!r}")
        token, bias = pair
        if isinstance(token, str) and token.strip().lstrip("-").isdigit():
            token = int(token)  # JSON object keys are strings
        _check(_integer(token) and token >= 0,
               f"logit_bias keys must be token ids (whole numbers >= 0), got {token!r}")
        _check(_number(bias) and -100 <= bias <= 100,
               f"logit_bias values must be between -100 and 100, got {bias!r} for token {token}")
        _check(token not in out, f"logit_bias names token {token} twice")
        out[token] = float(bias)
    return tuple(sorted(out.items()))


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _integer(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(f"Invalid generation parameter: {message}")
