"""Constrained decoding, logprobs, penalties and logit_bias on the real bundled model."""

from __future__ import annotations

import json
import math
import threading

import jsonschema
import pytest

from dialoop.engine import Chunk, GenerationParams
from dialoop.engine.grammar import check_grammar, json_grammar
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.errors import InvalidInputError

pytestmark = pytest.mark.slow

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "city": {"type": "string", "enum": ["Paris", "Tokyo", "Lima"]},
        "hobbies": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "city", "hobbies"],
    "additionalProperties": False,
}


def _ask(question: str) -> list:
    return [{"role": "user", "content": question}]


def _run(engine: LlamaCppEngine, messages: list, params: GenerationParams) -> tuple[str, list[Chunk]]:
    chunks = list(engine.stream(messages, params))
    return "".join(c.text for c in chunks), chunks


# -- grammars ---------------------------------------------------------------------------


@pytest.mark.parametrize("question", [
    "Describe a person as JSON.",
    "Who are you? Answer as JSON.",
    "Write a long poem about the sea.",  # the model would rather not answer in JSON
])
def test_json_schema_answers_parse_and_validate(llama_engine: LlamaCppEngine, question: str) -> None:
    params = GenerationParams(max_tokens=200, grammar=json_grammar(PERSON))
    text, chunks = _run(llama_engine, _ask(question), params)
    assert chunks[-1].finish_reason == "stop", text  # the grammar's end ended the answer
    jsonschema.validate(json.loads(text), PERSON)


def test_json_object_mode_gives_an_object(llama_engine: LlamaCppEngine) -> None:
    params = GenerationParams(max_tokens=200, grammar=json_grammar())
    text, chunks = _run(llama_engine, _ask("List three colours."), params)
    assert chunks[-1].finish_reason == "stop", text
    assert isinstance(json.loads(text), dict)


def test_prefix_and_suffix_wrap_the_json(llama_engine: LlamaCppEngine) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
              "required": ["city"]}
    grammar = json_grammar(schema, prefix="<tool_call>\n", suffix="\n</tool_call>")
    text, chunks = _run(llama_engine, _ask("What is the weather in Paris?"),
                        GenerationParams(max_tokens=100, grammar=grammar))
    assert chunks[-1].finish_reason == "stop"
    assert text.startswith("<tool_call>\n") and text.endswith("\n</tool_call>")
    jsonschema.validate(json.loads(text.removeprefix("<tool_call>").removesuffix("</tool_call>")),
                        schema)


def test_a_hand_written_grammar_is_followed(llama_engine: LlamaCppEngine) -> None:
    grammar = 'root ::= ("yes" | "no") "." '
    text, chunks = _run(llama_engine, _ask("Is the sky green? Explain at length."),
                        GenerationParams(max_tokens=20, grammar=grammar))
    assert text in ("yes.", "no.") and chunks[-1].finish_reason == "stop"


def test_max_tokens_still_cuts_a_grammar_answer(llama_engine: LlamaCppEngine) -> None:
    text, chunks = _run(llama_engine, _ask("Describe a person as JSON."),
                        GenerationParams(max_tokens=5, grammar=json_grammar(PERSON)))
    last = chunks[-1]
    assert last.finish_reason == "length" and last.usage and last.usage.completion_tokens == 5
    assert text.startswith("{")


def test_seeded_sampling_under_a_grammar_is_repeatable(llama_engine: LlamaCppEngine) -> None:
    schema = {"type": "object", "properties": {"city": PERSON["properties"]["city"],
                                               "age": {"type": "integer"}},
              "required": ["city", "age"]}
    params = GenerationParams(max_tokens=60, temperature=1.0, seed=7, grammar=json_grammar(schema))
    first, _ = _run(llama_engine, _ask("Where do you live?"), params)
    again, _ = _run(llama_engine, _ask("Where do you live?"), params)
    assert first == again
    jsonschema.validate(json.loads(first), schema)


def test_cancel_works_under_a_grammar(llama_engine: LlamaCppEngine) -> None:
    chunks = []
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 100}
    for chunk in llama_engine.stream(_ask("Count to a thousand."),
                                     GenerationParams(max_tokens=300, grammar=json_grammar(schema))):
        chunks.append(chunk)
        if len(chunks) == 5:
            threading.Thread(target=llama_engine.cancel).start()
    assert chunks[-1].finish_reason == "cancelled"


def test_bad_grammars_and_schemas_are_refused_before_generating(
    llama_engine: LlamaCppEngine,
) -> None:
    with pytest.raises(InvalidInputError, match="Undefined rule identifier 'nothing'"):
        llama_engine.stream(_ask("hi"), GenerationParams(grammar="root ::= nothing"))
    with pytest.raises(InvalidInputError, match="no 'root' rule"):
        check_grammar('answer ::= "x"')
    with pytest.raises(InvalidInputError, match="not valid JSON Schema"):
        json_grammar({"type": "strnig"})
    with pytest.raises(InvalidInputError, match="cannot be enforced"):
        json_grammar({"$ref": "https://example.com/schema.json"})
    with pytest.raises(InvalidInputError, match="must be an object"):
        json_grammar(["not", "a", "schema"])  # type: ignore[arg-type]


def test_json_grammars_bound_whitespace() -> None:
    grammar = json_grammar(PERSON, prefix='say "\\ "', suffix="\n")
    assert 'space ::= " "?' in grammar.splitlines()
    assert grammar.startswith('root ::= "say \\"\\\\ \\"" answer "\\n"')
    check_grammar(grammar)


# -- logprobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("grammar", [None, json_grammar(PERSON)], ids=["free", "json"])
def test_logprobs_cover_every_answer_token_once(llama_engine: LlamaCppEngine,
                                                grammar: str | None) -> None:
    params = GenerationParams(max_tokens=60, logprobs=5, grammar=grammar)
    text, chunks = _run(llama_engine, _ask("Name three fruits."), params)
    tokens = [lp for c in chunks for lp in c.logprobs]
    usage = chunks[-1].usage
    assert usage and len(tokens) == usage.completion_tokens
    assert "".join(t.token for t in tokens) == text
    for t in tokens:
        assert t.logprob <= 0 and len(t.top) == 5
        assert bytes(t.bytes).decode() == t.token
        assert [lp for _, lp, _ in t.top] == sorted((lp for _, lp, _ in t.top), reverse=True)
        if grammar is None:  # greedy and unconstrained: the choice is the most likely token
            assert t.top[0][0] == t.token and math.isclose(t.top[0][1], t.logprob)
        else:
            assert t.logprob <= t.top[0][1] + 1e-9
    # the answer itself does not change when logprobs are asked for
    plain, _ = _run(llama_engine, _ask("Name three fruits."),
                    GenerationParams(max_tokens=60, grammar=grammar))
    assert plain == text


def test_logprobs_zero_gives_no_alternatives_and_sums_sensibly(
    llama_engine: LlamaCppEngine,
) -> None:
    text, chunks = _run(llama_engine, _ask("Say hello."), GenerationParams(max_tokens=20, logprobs=0))
    tokens = [lp for c in chunks for lp in c.logprobs]
    assert tokens and all(t.top == () for t in tokens)
    assert -50 * len(tokens) < sum(t.logprob for t in tokens) <= 0


def test_logprobs_skip_the_stop_string(llama_engine: LlamaCppEngine) -> None:
    story = _ask("Write a long story about a dragon.")
    full, _ = _run(llama_engine, story, GenerationParams(max_tokens=60))
    word = next(w for w in full.split()[5:] if w.isalpha() and len(w) >= 5)
    text, chunks = _run(llama_engine, story, GenerationParams(max_tokens=60, stop=(word,), logprobs=1))
    assert chunks[-1].finish_reason == "stop" and word not in text
    spelled = "".join(t.token for c in chunks for t in c.logprobs)
    # the tokens spell the answer, plus at most the start of the stop string that the
    # answer's last token carries; the stop string's own tokens are left out
    assert spelled.startswith(text) and len(spelled) - len(text) <= len(word)
    assert word.startswith(spelled[len(text):].lstrip())


def test_logprobs_off_by_default(llama_engine: LlamaCppEngine) -> None:
    _, chunks = _run(llama_engine, _ask("Say hello."), GenerationParams(max_tokens=10))
    assert all(c.logprobs == () for c in chunks)


# -- logit_bias and penalties -------------------------------------------------------------


def _first_token(engine: LlamaCppEngine, messages: list, **extra: object) -> tuple[str, list]:
    _, chunks = _run(engine, messages, GenerationParams(max_tokens=1, logprobs=3, **extra))  # type: ignore[arg-type]
    first = next(lp for c in chunks for lp in c.logprobs)
    return first.token, list(first.top)


def _token_id(engine: LlamaCppEngine, text: str) -> int:
    ids = engine._llm.tokenize(text.encode(), add_bos=False, special=False)
    assert len(ids) == 1, (text, ids)
    return ids[0]


def test_logit_bias_bans_and_forces_tokens(llama_engine: LlamaCppEngine) -> None:
    question = _ask("Name three fruits.")
    first, top = _first_token(llama_engine, question)
    banned = _token_id(llama_engine, first)
    other, _ = _first_token(llama_engine, question, logit_bias={banned: -100})
    assert other != first
    forced_text = " zebra" if first != " zebra" else " cat"
    forced = _token_id(llama_engine, forced_text)
    got, top = _first_token(llama_engine, question, logit_bias={forced: 100})
    assert got == forced_text and top[0][0] == forced_text and top[0][1] > -0.01


def test_logit_bias_for_a_token_the_model_lacks_is_refused(llama_engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidInputError, match="logit_bias names token 10000000"):
        llama_engine.stream(_ask("hi"), GenerationParams(logit_bias={10_000_000: 1}))


REPETITIVE = _ask("Repeat the word 'apple' fifty times, separated by spaces.")


def test_presence_and_frequency_penalties_cut_repetition(llama_engine: LlamaCppEngine) -> None:
    def apples(**extra: float) -> int:
        text, _ = _run(llama_engine, REPETITIVE, GenerationParams(max_tokens=80, **extra))  # type: ignore[arg-type]
        return text.lower().count("apple")

    plain = apples()
    assert plain >= 10  # the prompt does make the model repeat
    assert apples(frequency_penalty=2.0) < plain
    assert apples(frequency_penalty=2.0, presence_penalty=2.0) < plain


def test_presence_penalty_lowers_the_logprob_of_tokens_already_said(
    llama_engine: LlamaCppEngine,
) -> None:
    def tokens(**extra: float) -> list:
        _, chunks = _run(llama_engine, REPETITIVE,
                         GenerationParams(max_tokens=30, logprobs=0, **extra))  # type: ignore[arg-type]
        return [t for c in chunks for t in c.logprobs]

    plain, penalised = tokens(), tokens(presence_penalty=2.0)
    said: set[str] = set()
    compared = 0
    for a, b in zip(plain, penalised, strict=False):
        if a.token != b.token:
            break  # the answers part here; later steps see different histories
        if a.token in said:  # a repeat, which the presence penalty makes less likely
            assert b.logprob < a.logprob
            compared += 1
        said.add(a.token)
    assert compared >= 1


def test_negative_penalty_changes_the_answer(llama_engine: LlamaCppEngine) -> None:
    question = _ask("Write a short story about a cat.")
    plain, _ = _run(llama_engine, question, GenerationParams(max_tokens=60))
    encouraged, _ = _run(llama_engine, question,
                         GenerationParams(max_tokens=60, frequency_penalty=-2.0))
    assert encouraged != plain
