"""The dialoop command end to end: real model, real SQLite file, real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import bundled_gguf
from tests.integration.cli import dialoop, dialoop_json, start

pytestmark = pytest.mark.slow

STORY = "Write a very long story about a dragon and a knight, with many chapters."


def test_ask_prints_the_answer() -> None:
    proc = dialoop("ask", "What is the capital of Japan?", "--max-tokens", "30")
    [session] = dialoop_json("sessions", "list", "--json")
    answer = dialoop_json("sessions", "export", session["id"])["turns"][-1]
    assert answer["role"] == "assistant" and answer["content"]
    assert proc.stdout == answer["content"] + "\n"  # what was printed is what was stored
    assert proc.stderr == ""


def test_ask_json_for_scripts() -> None:
    data = dialoop_json("ask", "What is the capital of Japan?", "--json", "--max-tokens", "30")
    answer = dialoop_json("sessions", "export", data["session_id"])["turns"][-1]
    assert (answer["id"], answer["content"]) == (data["turn_id"], data["answer"])
    assert data["answer"] and data["finish_reason"] in ("stop", "length")
    assert isinstance(data["tokens"], int) and data["tokens"] == answer["completion_tokens"] > 0
    assert data["seconds"] > 0 and data["session"]


def test_session_survives_a_restart_and_the_next_turn_sees_the_first(
    llama_engine: LlamaCppEngine,
) -> None:
    # Two processes: the second turn has only the database to go on. What the model makes
    # of its prompt varies with the CPU it runs on; the prompt itself must not.
    first = dialoop_json("ask", "My favourite color is blue.", "--session", "me", "--json",
                         "--max-tokens", "40")
    second = dialoop_json("ask", "What is my favourite color?", "--session", "me", "--json",
                          "--max-tokens", "40")
    assert second["session_id"] == first["session_id"] and second["session"] == "me"
    turns = dialoop_json("sessions", "export", "me")["turns"]
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "My favourite color is blue."), ("assistant", first["answer"]),
        ("user", "What is my favourite color?"), ("assistant", second["answer"])]
    assert [turns[1]["id"], turns[3]["id"]] == [first["turn_id"], second["turn_id"]]
    # The second prompt was the whole first exchange, then the question: nothing dropped,
    # exactly the tokens of that conversation in the model's chat template.
    seen = [{"role": t["role"], "content": t["content"]} for t in turns[:3]]
    assert second["prompt_tokens"] == llama_engine.count_tokens(llama_engine.render(seen))
    assert turns[3]["trace"]["context"]["dropped_messages"] == 0
    show = dialoop("sessions", "show", "me").stdout
    assert show.count("you: ") == 2 and "My favourite color is blue." in show


def test_sessions_list_and_delete() -> None:
    dialoop("ask", "Hi", "--session", "gone", "--max-tokens", "5")
    listed = dialoop_json("sessions", "list", "--json")
    assert [s["name"] for s in listed] == ["gone"] and listed[0]["turns"] == 2
    dialoop("sessions", "delete", "gone", "--yes")
    assert dialoop_json("sessions", "list", "--json") == []
    missing = dialoop("sessions", "show", "gone", check=False)
    assert missing.returncode == 1 and "No session 'gone'" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/model.gguf"], "No model file at /no/such/model.gguf"),
        (["--model", "{bad}"], "is not a GGUF model file"),
        (["--model", "{truncated}"], "may be truncated or corrupt"),
        (["--temperature", "7"], "temperature must be between 0 and 2"),
        (["--engine", "remote"], "needs remote_url"),
    ],
    ids=["missing-model", "not-gguf", "corrupt-gguf", "bad-parameter", "bad-setting"],
)
def test_errors_are_one_clear_line_and_store_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(bundled_gguf().read_bytes()[:2_000_000])
    args = [a.format(bad=bad, truncated=truncated) for a in args]
    proc = dialoop("ask", "Hello?", *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert proc.stdout == ""
    listed = dialoop("sessions", "list", "--json").stdout
    assert listed.strip() == "[]"


def test_locked_database_is_one_clear_line(dialoop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dialoop("sessions", "list")  # creates the database
    monkeypatch.setenv("DIALOOP_DB_TIMEOUT", "0.5")
    other = sqlite3.connect(dialoop_home / "dialoop.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        proc = dialoop("ask", "Hello?", "--session", "x", check=False)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert proc.returncode == 1
    assert "is locked: another process" in proc.stderr and len(proc.stderr.splitlines()) == 1


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 120) -> str:
    """Read the process's stdout character by character until ``needle`` shows up."""
    seen = ""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while needle not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not seen; got {seen[-500:]!r}")
        ch = proc.stdout.read(1)
        if not ch:
            raise AssertionError(f"process ended before {needle!r}; got {seen[-500:]!r}")
        seen += ch
    return seen


def test_chat_repl_commands() -> None:
    proc = start("chat", "--session", "trip")
    out, err = proc.communicate(
        "What is the capital of Japan?\n/history\n/bogus\n/new other\n/sessions\n/help\n/quit\n",
        timeout=300,
    )
    assert proc.returncode == 0, err
    answer = dialoop_json("sessions", "export", "trip")["turns"][1]["content"]
    assert "session trip" in out and answer and f"{answer}\n" in out  # shown as stored
    assert "you: What is the capital of Japan?" in out  # /history
    assert "Unknown command /bogus" in out
    assert "New session other." in out
    assert "trip" in out.split("New session other.")[1]  # /sessions lists the first one
    assert "/history                show this session's turns" in out  # /help's table


def test_ctrl_c_stops_the_answer_not_the_program() -> None:
    proc = start("chat", "--session", "story")
    assert proc.stdin is not None
    _read_until(proc, "/quit to leave")
    proc.stdin.write(STORY + "\n")
    _read_until(proc, "you> ")  # the prompt before the answer starts streaming
    _read_until(proc, " ")  # some answer text has arrived
    proc.send_signal(signal.SIGINT)
    _read_until(proc, "(stopped)")
    _read_until(proc, "you> ")  # the program goes on
    proc.stdin.write("What is the capital of Japan?\n")
    shown = _read_until(proc, "you> ")  # the next answer, in full, then the prompt again
    proc.stdin.write("/quit\n")
    proc.stdin.flush()
    assert proc.wait(60) == 0
    exported = dialoop_json("sessions", "export", "story")
    statuses = [(t["role"], t["status"]) for t in exported["turns"]]
    assert statuses == [("user", "complete"), ("assistant", "cancelled"),
                        ("user", "complete"), ("assistant", "complete")]
    assert exported["turns"][3]["content"] and exported["turns"][3]["content"] in shown


def test_kill_mid_answer_leaves_the_session_consistent() -> None:
    proc = start("ask", STORY, "--session", "crash", "--max-tokens", "400")
    _read_until(proc, " ")  # the answer is streaming
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    exported = dialoop_json("sessions", "export", "crash")
    assert [(t["role"], t["content"]) for t in exported["turns"]] == [("user", STORY)]
    # the session goes on; the unanswered turn is kept but not shown to the model
    after = dialoop_json("ask", "What is the capital of Japan?", "--session", "crash", "--json",
                         "--max-tokens", "30")
    alone = dialoop_json("ask", "What is the capital of Japan?", "--json", "--max-tokens", "30")
    assert after["prompt_tokens"] == alone["prompt_tokens"]  # the same prompt…
    assert after["answer"] == alone["answer"]  # …so the same greedy answer
