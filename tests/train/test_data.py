"""Dialogue files: both formats read, every problem named with its line, splits fixed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialoop.errors import InvalidInputError
from dialoop.train.data import load_dialogues, split_dialogues


def _write(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


OPENAI = {"messages": [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Price of the rug?"},
    {"role": "assistant", "content": "It costs $149.", "keys": ["$149"]},
]}
SHAREGPT = {"system": "Be kind.", "conversations": [
    {"from": "human", "value": "Hi"},
    {"from": "gpt", "value": "Hello!"},
]}


def test_openai_and_sharegpt_lines_read_into_the_same_form(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", OPENAI, "", SHAREGPT)
    a, b = load_dialogues(path)
    assert [m["role"] for m in a.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert a.keys == {4: ("$149",)}
    assert all(set(m) == {"role", "content"} for m in a.messages)  # keys never reach the model
    assert b.messages == a.messages[:3]
    assert b.where == "d.jsonl:3"
    assert a.assistant_turns == [2, 4]


def test_an_answer_of_weight_0_is_context_only(tmp_path: Path) -> None:
    marked = {"messages": [*OPENAI["messages"][:2],
                           {"role": "assistant", "content": "Go away.", "weight": 0},
                           *OPENAI["messages"][3:]]}
    sharegpt = {"conversations": [{"from": "human", "value": "Hi"},
                                  {"from": "gpt", "value": "Go away.", "weight": 0},
                                  {"from": "human", "value": "Please?"},
                                  {"from": "gpt", "value": "Hello!", "weight": 1}]}
    a, b = load_dialogues(_write(tmp_path / "d.jsonl", marked, sharegpt))
    assert a.untrained == {2} and a.assistant_turns == [4]
    assert a.messages[2] == {"role": "assistant", "content": "Go away."}
    assert b.untrained == {1} and b.assistant_turns == [3]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", r"d.jsonl:2: not valid JSON"),
    ([1, 2], r"d.jsonl:2: expected a JSON object"),
    ({"text": "hi"}, r"d.jsonl:2: no 'messages' \(OpenAI format\) or 'conversations'"),
    ({"messages": []}, r"d.jsonl:2: 'messages' must be a non-empty list"),
    ({"messages": [{"role": "bot", "content": "x"}]}, r"d.jsonl:2: message 1 has role 'bot'"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
     r"d.jsonl:2: message 1 \(user\) has no text"),
    ({"messages": [{"role": "user", "content": "hi"}]}, r"d.jsonl:2: no assistant message"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, r"must start with the user"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},
                   {"role": "assistant", "content": "c"}]}, r"message 2 is a system message"),
    ({"messages": [{"role": "user", "content": "a", "keys": ["x"]},
                   {"role": "assistant", "content": "c"}]}, r"only assistant messages have keys"),
    ({"conversations": [{"from": "alien", "value": "a"}]}, r"turn 1 is from 'alien'"),
    ({"messages": [{"role": "user", "content": "a"},
                   {"role": "assistant", "content": "c", "weight": 0.5}]},
     r"d.jsonl:2: message 2: 'weight' is 0 \(context only\) or 1"),
    ({"messages": [{"role": "user", "content": "a", "weight": 0},
                   {"role": "assistant", "content": "c"}]}, r"only assistant messages have"),
    ({"id": "x", "turns": [{"role": "user", "content": "a"}]},
     r"d.jsonl:2: this is dialoop's own session export.*--format openai"),
    ({"messages": OPENAI["messages"], "conversations": SHAREGPT["conversations"]},
     r"both 'messages' and 'conversations'"),
])
def test_an_invalid_line_is_refused_with_its_line_number(
    tmp_path: Path, line: object, message: str
) -> None:
    path = _write(tmp_path / "d.jsonl", OPENAI, line, OPENAI)
    with pytest.raises(InvalidInputError, match=message):
        load_dialogues(path)


def test_several_bad_lines_are_counted_in_one_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", "x", OPENAI, "y", "z")
    with pytest.raises(InvalidInputError, match=r"d.jsonl:1: .* \(and 2 more invalid lines\)"):
        load_dialogues(path)


def test_missing_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="No dialogue file"):
        load_dialogues(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidInputError, match="holds no dialogues"):
        load_dialogues(_write(tmp_path / "empty.jsonl", ""))


def test_the_validation_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    lines = [{"messages": [{"role": "user", "content": f"q{i}"},
                           {"role": "assistant", "content": f"a{i}"}]} for i in range(20)]
    dialogues = load_dialogues(_write(tmp_path / "d.jsonl", *lines))
    train, val = split_dialogues(dialogues, 0.2, seed=1)
    again, val_again = split_dialogues(dialogues, 0.2, seed=1)
    _, other = split_dialogues(dialogues, 0.2, seed=2)
    assert len(val) == 4 and len(train) == 16
    assert {d.where for d in val}.isdisjoint(d.where for d in train)
    assert val == val_again and train == again
    assert val != other
    with pytest.raises(InvalidInputError):
        split_dialogues(dialogues, 1.0, seed=1)


def test_the_store_support_data_set_is_valid_and_split_as_documented() -> None:
    root = Path(__file__).parents[2] / "examples" / "store_support" / "sft"
    sizes = {name: len(load_dialogues(root / f"{name}.jsonl"))
             for name in ("train", "validation", "test")}
    assert sizes == {"train": 240, "validation": 30, "test": 30}
    test = load_dialogues(root / "test.jsonl")
    assert sum(len(d.assistant_turns) > 1 for d in test) >= 25  # multi-turn
    assert sum(len(d.keys) for d in test) >= 30  # QA-style keys to check
