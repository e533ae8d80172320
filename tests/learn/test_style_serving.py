"""A version's style part serves every message of its user, stacked with the lessons part
where the router sends the message; satisfaction is counted per version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.assistant import Parts, open_parts
from dialoop.config import load_settings
from dialoop.dialogue.session import Sessions
from dialoop.engine.adapters import LoadedAdapters
from dialoop.learn.loop import satisfaction_per_version
from tests.fakes import FakeEngine, HashEmbedder

CEO = "Who is the CEO of Zorvath Dynamics?"


@pytest.fixture
def parts(dialoop_home: Path) -> Iterator[Parts]:
    parts = open_parts(load_settings(knowledge=False), embedder=HashEmbedder())
    yield parts
    parts.close()


def _peft(folder: Path) -> Path:
    """A PEFT folder's files: nothing here loads them (the engine is a fake)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def _version(parts: Parts, tmp: Path, *, lessons: list[int] | None, style: bool,
             rated: list[str] | None = None) -> str:
    """Add and promote a version of ann's line with the given parts; return its key."""
    n = len(parts.adapters.history("user:ann")) + 1
    row = parts.adapters.add(
        "user:ann", _peft(tmp / f"l{n}") if lessons is not None else None,
        source="consolidation", base_model="m", base_gguf=None, user_id="ann",
        meta={"lessons": lessons or [], "router": lessons or [], "style_router": rated},
        style_dir=_peft(tmp / f"s{n}") if style else None)
    parts.adapters.promote("user:ann", row.version)
    return row.key


def test_the_style_part_answers_everything_the_lessons_part_what_it_routes(
        parts: Parts, tmp_path: Path) -> None:
    learning = parts.learning
    lesson = learning.teach(CEO, "Mirela Quonst", user="ann").lesson_id
    assert lesson is not None
    v1 = _version(parts, tmp_path, lessons=[lesson], style=True)
    assert learning.adapter_for("ann", CEO) == f"{v1}+{v1}#style"
    assert learning.adapter_for("ann", "What is 2 plus 2?") == f"{v1}#style"
    assert learning.adapter_for("bob", CEO) is None  # ann's line is not bob's

    v2 = _version(parts, tmp_path, lessons=None, style=True)  # ratings only: a style part
    assert learning.adapter_for("ann", CEO) == f"{v2}#style"
    v3 = _version(parts, tmp_path, lessons=[lesson], style=False)  # as before styles existed
    assert learning.adapter_for("ann", CEO) == v3
    assert learning.adapter_for("ann", "What is 2 plus 2?") is None

    # What the assistant passes to its LoadedAdapters finds every part's files.
    engine = FakeEngine()
    slots = LoadedAdapters(engine, lambda part: parts.adapters.locate(part, engine.kind))
    with slots.use(f"{v1}+{v1}#style") as key:
        assert key == f"{v1}+{v1}#style"
        row = parts.adapters.get("user:ann", 1)
        assert engine.adapters == {v1: parts.settings.home / row.path,
                                   f"{v1}#style": parts.settings.home / row.path / "style"}


def test_history_shows_the_style_part_and_satisfaction_per_version(
        parts: Parts, tmp_path: Path) -> None:
    v1 = _version(parts, tmp_path, lessons=None, style=True)
    sessions = Sessions(parts.db)
    chat = sessions.open(None, "ann")
    for i, (adapter, rating) in enumerate([(f"{v1}#style", 1), (f"{v1}#style", -1),
                                           (f"{v1}+{v1}#style", 1), (None, -1)]):
        sessions.add_turn(chat, "user", f"Question {i}?")
        turn = sessions.add_turn(chat, "assistant", f"Answer {i}.", adapter=adapter)
        parts.learning.rate(turn.id, rating, user="ann")
    [row] = parts.learning.history(user="ann")
    assert row["style"] is True and row["satisfaction"] == round(2 / 3, 4)
    status = parts.learning.status(user="ann")["satisfaction"]
    assert status[v1] == {"good": 2, "bad": 1, "ratings": 3, "satisfaction": round(2 / 3, 4)}
    assert status["base"]["ratings"] == 1


def test_a_stack_counts_for_each_version_it_used() -> None:
    table = {"global@v2+user:ann@v3#style": {"good": 1, "bad": 0},
             "user:ann@v3": {"good": 0, "bad": 1}, "base": {"good": 2, "bad": 2}}
    out = satisfaction_per_version(table)
    assert out["user:ann@v3"] == {"good": 1, "bad": 1, "ratings": 2, "satisfaction": 0.5}
    assert out["global@v2"]["satisfaction"] == 1.0 and out["base"]["ratings"] == 4


def test_the_style_part_answers_messages_like_the_ones_rated(parts: Parts, tmp_path: Path
                                                             ) -> None:
    rated = ["Where is my new card?", "How do I top up my account?"]
    key = _version(parts, tmp_path, lessons=None, style=True, rated=rated)
    row = parts.adapters.get("user:ann", 1)
    assert [parts.learning.style_routes(row, q) for q in rated] == [True, True]
    assert parts.learning.adapter_for("ann", rated[1]) == f"{key}#style"
    # Hash vectors of other texts are far apart (checked): those go to the base model.
    assert parts.learning.style_routes(row, "What do bees make?") is False
    assert parts.learning.adapter_for("ann", "What do bees make?") is None
