"""``dialoop sessions summarize``: a session's summary, stored once; another user's
session or an unknown one is a usage error (exit 2) that names the way out."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from dialoop.cli import cli
from dialoop.config import load_settings
from dialoop.dialogue.session import Sessions
from dialoop.dialogue.summary import Summaries
from dialoop.store import open_database


def _seed(user: str, name: str) -> str:
    """A session of ``user`` with facts stated among chit-chat; its id."""
    settings = load_settings()
    db = open_database(settings.resolved_database_url)
    sessions = Sessions(db)
    session = sessions.create(user, name=name)
    said = ["Hi, my name is Marisol Quint.", "Can you tell me a joke?",
            "My order number is A-48213, it has not arrived.", "What is the capital of Peru?",
            "I live in Lisbon."]
    sessions.add_turns(session, [m for text in said
                                 for m in (("user", text), ("assistant", "Sure."))])
    db.close()
    return session.id


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["sessions", "summarize", *args])


def test_summarize_prints_and_stores_the_summary_once() -> None:
    session_id = _seed("local", "trip")
    shown = _run("trip")
    assert shown.exit_code == 0, shown.output
    assert "Summary of the earlier conversation (turns 1–5), session trip" in shown.stdout
    for fact in ("Marisol Quint", "A-48213", "Lisbon"):
        assert fact in shown.stdout
    assert "joke" not in shown.stdout and "Peru" not in shown.stdout
    first = json.loads(_run(session_id, "--json").stdout)  # by id too
    again = json.loads(_run("trip", "--json", "--kind", "extractive").stdout)
    assert first == again  # made once, read back
    assert first["session_id"] == session_id and first["turns"] == [1, 5]
    assert first["messages"] == 10 and first["kind"] == "extractive"
    db = open_database(load_settings().resolved_database_url)
    assert Summaries(db).latest(session_id).id == first["id"]
    db.close()


def test_an_unknown_session_is_a_usage_error() -> None:
    refused = _run("nowhere")
    assert refused.exit_code == 2
    assert "no session 'nowhere'" in refused.output and "dialoop sessions list" in refused.output


def test_another_users_session_is_not_found_whoever_asks() -> None:
    session_id = _seed("ann", "ann-trip")
    for ref in ("ann-trip", session_id):
        refused = _run(ref, "--user", "bob")
        assert refused.exit_code == 2, refused.output
        assert "no session" in refused.output and "Marisol" not in refused.output
    assert _run("ann-trip").exit_code == 2  # the default user is not ann either
    assert _run("ann-trip", "--user", "ann").exit_code == 0
