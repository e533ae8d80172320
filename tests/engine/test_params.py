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
        ("grammar", "", "grammar must be a non-empty GBNF string"),
        ("grammar", 42, "grammar"),
        ("logprobs", -1, "logprobs must be None"),
        ("logprobs", 21, r"\[0, 20\]"),
        ("logprobs", True, "logprobs"),
        ("frequency_penalty", 2.5, "frequency_penalty must be between -2 and 2"),
        ("frequency_penalty", float("inf"), "frequency_penalty"),
        ("presence_penalty", -2.1, "presence_penalty must be between -2 and 2"),
        ("logit_bias", {5: 101}, "between -100 and 100"),
        ("logit_bias", {-1: 1.0}, "token ids"),
        ("logit_bias", {"x": 1.0}, "token ids"),
        ("logit_bias", {1: float("nan")}, "between -100 and 100"),
        ("logit_bias", [(1, 2.0), (1, 3.0)], "twice"),
        ("logit_bias", [(1, 2.0, 3.0)], "pairs"),
        ("logit_bias", 7, "logit_bias must map token ids"),
        ("logit_bias", {i: 1.0 for i in range(301)}, "at most 300"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        GenerationParams(**{field: value})  # type: ignore[arg-type]


def test_defaults_are_greedy_and_a_single_stop_string_is_accepted() -> None:
    params = GenerationParams(stop="\n\n")  # type: ignore[arg-type]
    assert params.greedy
    assert params.stop == ("\n\n",)


def test_logit_bias_is_normalised_to_sorted_pairs_and_traces_keep_working() -> None:
    import dataclasses

    params = GenerationParams(logit_bias={9: 5, "3": -100.0})  # type: ignore[arg-type]
    assert params.logit_bias == ((3, -100.0), (9, 5.0))
    assert params == GenerationParams(logit_bias=[(9, 5.0), (3, -100)])  # type: ignore[arg-type]
    stored = dataclasses.asdict(params)  # what a turn trace keeps
    assert stored["logit_bias"] == ((3, -100.0), (9, 5.0)) and stored["logprobs"] is None
    assert GenerationParams(**stored) == params
    hash(params)  # still usable as a key


def test_new_fields_default_to_off() -> None:
    params = GenerationParams(grammar='root ::= "yes" | "no"', logprobs=0,
                              frequency_penalty=-2, presence_penalty=2)
    assert params.logprobs == 0 and params.grammar is not None
    plain = GenerationParams()
    assert (plain.grammar, plain.logprobs, plain.logit_bias) == (None, None, ())
    assert plain.frequency_penalty == plain.presence_penalty == 0.0
