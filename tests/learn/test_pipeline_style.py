"""Consolidation trains a line's style part on its user's bare ratings, stores it, gates it
and keeps it only while the ratings are unchanged. A tiny random model trains; a scripted
engine answers the gate (its answers are what these tests are about, not the model's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dialoop.assistant import Parts, open_parts
from dialoop.config import load_settings
from dialoop.dialogue.session import Sessions
from dialoop.learn import pipeline
from dialoop.learn.ratings import rated_examples
from tests.fakes import HashEmbedder, ScriptedEngine

pytestmark = pytest.mark.slow  # trains a tiny model a few times (a few seconds each)

CEO = "Who is the CEO of Zorvath Dynamics?"


def base_answer(prompt: str, adapter: str | None) -> str:
    return f"base says: {prompt}"


@pytest.fixture
def parts(dialoop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Parts]:
    monkeypatch.setattr(pipeline, "default_embedder", HashEmbedder)
    # 40 probes: the first 30 replay prompts are the style part's anchors, 10 are judged.
    # Hash vectors are not sentence vectors: the style router takes (nearly) every prompt.
    settings = load_settings(knowledge=False, learn_style_min_ratings=8, learn_gate_probes=40,
                             learn_gate_rated_behaviour=0.0, learn_gate_generalization=0.0,
                             learn_style_route_similarity=0.0)
    parts = open_parts(settings, embedder=HashEmbedder())
    yield parts
    parts.close()


def consolidate(parts: Parts, tiny_model: Any, tokenizer: Any,
                reply: Callable[[str, str | None], str] = base_answer) -> dict[str, Any]:
    engine = ScriptedEngine(reply)

    def models(settings: Any, report: Any) -> tuple[Any, Any, Any, Any]:
        return engine, tiny_model, tokenizer, None  # no GGUF: the engine loads PEFT folders

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_load_models", models)
        out = pipeline.consolidate_lines(parts.settings, parts.db, 1, lambda *a, **k: None)
    out["asked"] = engine.asked
    return out


def rate(parts: Parts, n: int, session: str = "chat", start: int = 0) -> list[int]:
    """``n`` rated answers of ann: short ones liked, apologies disliked."""
    sessions = Sessions(parts.db)
    chat = sessions.open(session, "ann")
    turns = []
    for i in range(start, start + n):
        sessions.add_turn(chat, "user", f"Where is my card number {i}?")
        liked = i % 2 == 0
        answer = "It ships today." if liked else "I'm sorry, as a chatbot I cannot help you."
        turn = sessions.add_turn(chat, "assistant", answer)
        parts.learning.rate(turn.id, 1 if liked else -1, user="ann")
        turns.append(turn.id)
    return turns


def test_ratings_alone_make_a_version_with_a_style_part(parts: Parts, tiny_model,  # type: ignore[no-untyped-def]
                                                        hf_tokenizer) -> None:
    rate(parts, 7)
    out = consolidate(parts, tiny_model, hf_tokenizer)
    assert "user:ann" not in out["lines"]  # 7 ratings: fewer than learn_style_min_ratings
    rate(parts, 5, start=7)
    line = consolidate(parts, tiny_model, hf_tokenizer)["lines"]["user:ann"]
    assert line["outcome"] == "promoted", line
    row = parts.adapters.active("user:ann")
    assert row is not None and parts.adapters.has_style(row)
    assert not (parts.settings.home / row.path / "adapter_config.json").exists()  # no lessons
    rated = rated_examples(parts.db, "user:ann")
    assert row.meta["ratings"] == [r.feedback_id for r in rated]
    assert row.meta["style_router"] == [r.question for r in rated]
    assert line["style"]["desirable"] + line["style"]["undesirable"] == 9  # 3 of 12 held out
    gate = line["gate"]
    assert gate["counts"]["rated_held_out"] == 3 and gate["counts"]["style_locality"] == 10
    assert gate["metrics"]["style_locality"] == 1.0 and "reliability" not in gate["metrics"]
    assert parts.learning.adapter_for("ann", rated[0].question) == f"{row.key}#style"


def test_a_line_is_unchanged_only_while_its_lessons_and_ratings_are(
        parts: Parts, tiny_model, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    rate(parts, 8, session="kept")
    gone = rate(parts, 4, session="gone", start=8)
    assert consolidate(parts, tiny_model, hf_tokenizer)["lines"]["user:ann"]["version"] == 1
    again = consolidate(parts, tiny_model, hf_tokenizer)
    assert again["lines"]["user:ann"] == {"outcome": "unchanged", "version": 1}
    assert again["asked"] == []  # nothing trained, nothing gated

    rate(parts, 1, session="kept", start=12)  # a new rating: a new version
    assert consolidate(parts, tiny_model, hf_tokenizer)["lines"]["user:ann"]["version"] == 2

    Sessions(parts.db).delete("gone", "ann")  # forgetting: its ratings leave the next version
    line = consolidate(parts, tiny_model, hf_tokenizer)["lines"]["user:ann"]
    row = parts.adapters.get("user:ann", line["version"])
    assert line["version"] == 3 and line["ratings"] == 9
    assert not {r.turn_id for r in rated_examples(parts.db, "user:ann")} & set(gone)
    assert row.meta["ratings"] == [r.feedback_id for r in rated_examples(parts.db, "user:ann")]


def test_a_style_part_that_changes_unrelated_answers_is_rejected(
        parts: Parts, tiny_model, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    rate(parts, 12)

    def chatty(prompt: str, adapter: str | None) -> str:
        return "Great question! " + prompt if adapter else base_answer(prompt, None)

    line = consolidate(parts, tiny_model, hf_tokenizer, chatty)["lines"]["user:ann"]
    assert line["outcome"] == "rejected" and line["gate"]["failed"] == ["style_locality"]
    assert parts.adapters.active("user:ann") is None
    assert parts.learning.adapter_for("ann", "Hello?") is None


def test_lessons_and_ratings_make_both_parts_and_the_gate_serves_the_stack(
        parts: Parts, tiny_model, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    parts.learning.teach(CEO, "Mirela Quonst", user="ann")
    rate(parts, 12)

    def served(prompt: str, adapter: str | None) -> str:
        if adapter and "user:ann@v1" in adapter.split("+") and prompt == CEO:
            return "Mirela Quonst runs it."
        return base_answer(prompt, None)

    out = consolidate(parts, tiny_model, hf_tokenizer, served)
    line = out["lines"]["user:ann"]
    assert line["outcome"] == "promoted", line["gate"]
    assert line["gate"]["metrics"]["reliability"] == 1.0
    assert line["gate"]["metrics"]["style_locality"] == 1.0
    row = parts.adapters.active("user:ann")
    assert row is not None and parts.adapters.has_style(row)
    assert (parts.settings.home / row.path / "adapter_config.json").is_file()
    # The style gate asked every probe through the style part; the lessons gate, the lesson.
    assert (CEO, "user:ann@v1") in out["asked"]
    styled = [p for p, adapter in out["asked"] if adapter == "user:ann@v1#style"]
    assert 0 < len(styled) == line["gate"]["counts"]["style_locality_routed"] <= 10
    if parts.learning.style_routes(row, CEO):
        assert parts.learning.adapter_for("ann", CEO) == "user:ann@v1+user:ann@v1#style"
    assert parts.learning.adapter_for("ann", "Where is my card number 3?") == "user:ann@v1#style"
