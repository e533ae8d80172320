"""Sessions and turns are stored durably and scoped to their user."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.dialogue.session import Sessions, answered
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import open_database


@pytest.fixture
def sessions(tmp_path: Path) -> Sessions:
    return Sessions(open_database(f"sqlite:///{tmp_path / 'x.db'}"))


def test_turns_are_appended_in_order_and_titled(sessions: Sessions) -> None:
    s = sessions.create("ann", name="trip")
    sessions.add_turn(s, "user", "Where should I go in Japan?")
    sessions.add_turn(s, "assistant", "Kyoto.")
    turns = sessions.turns(sessions.get("trip", "ann"))
    assert [(t.position, t.role, t.content) for t in turns] == [
        (1, "user", "Where should I go in Japan?"), (2, "assistant", "Kyoto.")]
    assert sessions.get(s.id, "ann").title == "Where should I go in Japan?"
    assert [i.turns for i in sessions.list("ann")] == [2]


def test_another_users_session_does_not_exist_for_them(sessions: Sessions) -> None:
    s = sessions.create("ann", name="private")
    for ref in ("private", s.id):
        with pytest.raises(NotFoundError):
            sessions.get(ref, "bob")
    assert sessions.list("bob") == []
    with pytest.raises(NotFoundError):
        sessions.delete("private", "bob")
    assert sessions.get("private", "ann").id == s.id
    # names are per user: bob may use the same one
    assert sessions.create("bob", name="private").id != s.id


def test_duplicate_name_and_bad_role_are_refused(sessions: Sessions) -> None:
    s = sessions.create("ann", name="trip")
    with pytest.raises(InvalidInputError, match="already exists"):
        sessions.create("ann", name="trip")
    with pytest.raises(InvalidInputError, match="role"):
        sessions.add_turn(s, "robot", "hi")
    assert sessions.turns(s) == []


def test_export_and_delete(sessions: Sessions) -> None:
    s = sessions.create("ann", name="trip", system_prompt="Be brief.")
    sessions.add_turn(s, "user", "Hi")
    data = sessions.export("trip", "ann")
    assert data["system_prompt"] == "Be brief." and data["turns"][0]["content"] == "Hi"
    sessions.delete("trip", "ann")
    with pytest.raises(NotFoundError):
        sessions.get("trip", "ann")
    with sessions.db.read() as db:  # the turns went with it (ON DELETE CASCADE)
        assert db.execute(__import__("sqlalchemy").text("SELECT count(*) FROM turns")).scalar() == 0


def test_unanswered_user_turns_are_left_out_of_the_prompt(sessions: Sessions) -> None:
    s = sessions.create("ann")
    for role, text in [("user", "a"), ("assistant", "A"), ("user", "b (crashed)"),
                       ("user", "c"), ("assistant", "C")]:
        sessions.add_turn(s, role, text)
    assert [t.content for t in answered(sessions.turns(s))] == ["a", "A", "c", "C"]
