"""Generation parameters are validated where they are made, with fix-it messages."""

from __future__ import annotations

import pytest

from dialoop.engine import GenerationParams
from dialoop.errors import InvalidInputError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 7, "temperature must be between 0 and 2"),
        ("temperature", -0.1, "temperature"),
        ("temperature", float("nan"), "temperature"),
        ("top_p", 0, "top_p must be in"),
        ("top_p", 1.5, "top_p"),
        ("top_k", -1, "top_k"),
        ("top_k", 2.5, "top_k"),
        ("max_tokens", 0, "max_tokens"),
        ("max_tokens", True, "max_tokens"),
        ("repeat_penalty", 0, "repeat_penalty"),
        ("seed", -3, "seed"),
        ("stop", ("",), "non-empty"),
        ("stop", tuple("abcdefghi"), "at most 8"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        GenerationParams(**{field: value})  # type: ignore[arg-type]


def test_defaults_are_greedy_and_a_single_stop_string_is_accepted() -> None:
    params = GenerationParams(stop="\n\n")  # type: ignore[arg-type]
    assert params.greedy
    assert params.stop == ("\n\n",)
