"""``dialoop sessions export --format openai|sharegpt``: stored sessions become training data
that ``dialoop train sft`` reads; what users said about the answers decides what is kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dialoop.assistant import Parts, open_parts
from dialoop.cli import cli
from dialoop.config import Settings
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.train.data import load_dialogues
from tests.fakes import HashEmbedder

SYSTEM = "You are the assistant of Pebble & Pine."


@pytest.fixture
def parts(settings: Settings) -> Iterator[Parts]:
    parts = open_parts(settings, embedder=HashEmbedder())
    yield parts
    parts.close()


def _exchange(parts: Parts, session: Any, question: str, answer: str | None,
              status: str = "complete") -> int | None:
    parts.sessions.add_turn(session, "user", question)
    if answer is None:
        return None
    return parts.sessions.add_turn(session, "assistant", answer, status=status).id


@pytest.fixture
def trip(parts: Parts) -> None:
    """One session with every case: rated good, corrected, rated bad, stopped, a correction
    withdrawn, a correction superseded by a newer lesson, a question left unanswered."""
    learning = parts.learning
    session = parts.sessions.create("local", name="trip", system_prompt=SYSTEM)
    good = _exchange(parts, session, "When do you open?", "At nine.")
    learning.rate(good, -1, user="local")  # (changed their mind: the latest rating counts)
    learning.rate(good, +1, user="local")
    corrected = _exchange(parts, session, "Where is my order?", "It is lost.")
    learning.rate(corrected, -1, user="local")
    learning.correct(corrected, "Order PP-1 left the warehouse today.", user="local")
    bad = _exchange(parts, session, "Can I return a lamp?", "No.")
    learning.rate(bad, -1, user="local", reason="wrong")
    _exchange(parts, session, "Tell me a long story.", "Once upon a", status="cancelled")
    withdrawn = _exchange(parts, session, "Do you ship abroad?", "Yes, everywhere.")
    lesson = learning.correct(withdrawn, "Only within the EU.", user="local").lesson_id
    learning.forget(lesson, user="local")  # type: ignore[arg-type]
    superseded = _exchange(parts, session, "How much is shipping?", "Ten dollars.")
    learning.correct(superseded, "Shipping costs four dollars.", user="local")
    learning.teach("How much is shipping?", "Shipping is free from 50 dollars.", user="local")
    _exchange(parts, session, "Hello?", None)  # the process died before the answer


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, standalone_mode=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


EXPECTED = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "When do you open?"},
    {"role": "assistant", "content": "At nine."},
    {"role": "user", "content": "Where is my order?"},
    {"role": "assistant", "content": "Order PP-1 left the warehouse today."},
    {"role": "user", "content": "Do you ship abroad?"},
    {"role": "assistant", "content": "Yes, everywhere."},
    {"role": "user", "content": "How much is shipping?"},
    {"role": "assistant", "content": "Shipping is free from 50 dollars."},
]
BAD = [{"role": "user", "content": "Can I return a lamp?"},
       {"role": "assistant", "content": "No."}]


def test_corrections_replace_bad_answers_go_stopped_answers_go(trip: None) -> None:
    (record,) = _lines(run("sessions", "export", "trip", "--format", "openai"))
    assert record == {"messages": EXPECTED}


def test_bad_answers_kept_or_marked(trip: None) -> None:
    kept = _lines(run("sessions", "export", "trip", "--format", "openai", "--bad", "keep"))
    assert kept[0]["messages"] == EXPECTED[:5] + BAD + EXPECTED[5:]
    marked = _lines(run("sessions", "export", "trip", "--format", "openai", "--bad", "mark"))
    assert marked[0]["messages"] == EXPECTED[:5] + [BAD[0], {**BAD[1], "weight": 0}] + EXPECTED[5:]


def test_sharegpt(trip: None) -> None:
    (record,) = _lines(run("sessions", "export", "trip", "--format", "sharegpt", "--bad", "mark"))
    turns = record["conversations"]
    assert turns[:3] == [{"from": "system", "value": SYSTEM},
                         {"from": "human", "value": "When do you open?"},
                         {"from": "gpt", "value": "At nine."}]
    assert {"from": "gpt", "value": "No.", "weight": 0} in turns
    assert set(record) == {"conversations"}


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_train_sft_reads_what_export_writes(trip: None, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"{fmt}.jsonl"
    run("sessions", "export", "trip", "--format", fmt, "--bad", "mark", "-o", str(out))
    (dialogue,) = load_dialogues(out)
    assert [m["content"] for m in dialogue.messages] == [
        m["content"] for m in EXPECTED[:5] + BAD + EXPECTED[5:]]
    assert dialogue.untrained == {6}  # the bad answer: context, not a target
    assert dialogue.assistant_turns == [2, 4, 8, 10]


def test_all_sessions_of_the_user(parts: Parts, trip: None, tmp_path: Path) -> None:
    stopped = parts.sessions.create("local", name="stopped")
    _exchange(parts, stopped, "Write an essay.", "Well", status="cancelled")
    other = parts.sessions.create("local")
    _exchange(parts, other, "Hi", "Hello! How can I help?")
    bobs = parts.sessions.create("bob")
    _exchange(parts, bobs, "Bob's question", "Bob's answer")
    out = tmp_path / "all.jsonl"
    result = CliRunner().invoke(cli, ["sessions", "export", "--all", "--format", "openai",
                                      "-o", str(out)], catch_exceptions=False)
    assert "Wrote 2 dialogues (1 without an answer to learn from left out)" in result.stderr
    records = _lines(out.read_text())
    assert [r["messages"][-1]["content"] for r in records] == [
        EXPECTED[-1]["content"], "Hello! How can I help?"]  # oldest first; bob's not there
    stored = json.loads(run("sessions", "export", "--all"))  # dialoop's own format: a list
    assert [s["name"] for s in stored] == ["trip", "stopped", None]
    assert stored[1]["turns"][1]["status"] == "cancelled"


def test_the_default_format_is_unchanged(trip: None) -> None:
    stored = json.loads(run("sessions", "export", "trip"))
    assert stored["name"] == "trip" and stored["system_prompt"] == SYSTEM
    assert [t["content"] for t in stored["turns"]][:2] == ["When do you open?", "At nine."]


def test_errors(parts: Parts, trip: None) -> None:
    with pytest.raises(InvalidInputError, match="or give --all"):
        run("sessions", "export", "--format", "openai")
    with pytest.raises(InvalidInputError, match="or give --all"):
        run("sessions", "export", "trip", "--all")
    with pytest.raises(InvalidInputError, match="--bad is for training data"):
        run("sessions", "export", "trip", "--bad", "mark")
    with pytest.raises(NotFoundError, match="No session 'nope'"):
        run("sessions", "export", "nope", "--format", "openai")
    session = parts.sessions.create("local", name="only-bad")
    turn = _exchange(parts, session, "Hi", "Go away.")
    parts.learning.rate(turn, -1, user="local")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="No answer to learn from"):
        run("sessions", "export", "only-bad", "--format", "openai")
    assert _lines(run("sessions", "export", "only-bad", "--format", "openai", "--bad", "keep"))
