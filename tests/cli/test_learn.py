"""``dialoop teach``, ``dialoop learn …`` and ``dialoop ask --batch`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.learn import worker
from dialoop.learn.plot import plot_versions


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False,
                                standalone_mode=False)
    return result.exit_code, result.output


def test_teach_status_lessons_forget() -> None:
    code, out = run("teach", "Who is the CEO of Zorvath Dynamics?", "Mirela Quonst")
    assert code == 0 and "Learned lesson 1 (user)" in out
    code, out = run("teach", "Who is the CEO of Zorvath Dynamics?", "Talia Brandoth", "--json")
    assert json.loads(out) == {"feedback_id": 2, "kind": "correction", "lesson_id": 2,
                               "superseded": [1]}
    status = json.loads(run("learn", "status", "--json")[1])
    assert status["lessons"] == {"active": 1, "pending": 1, "in_adapter": 0, "superseded": 1,
                                 "forgotten": 0}
    assert status["adapter"] is None
    assert "Talia Brandoth" in run("learn", "lessons")[1]
    assert run("learn", "lessons", "--user", "bob")[1] == ""  # bob sees none of it
    assert "Forgot lesson 2" in run("learn", "forget", "2")[1]
    assert json.loads(run("learn", "status", "--json")[1])["lessons"]["active"] == 0


def test_a_wording_the_lesson_missed_joins_it() -> None:
    run("teach", "Who is the CEO of Zorvath Dynamics?", "Mirela Quonst")
    code, out = run("teach", "Which person sits at the top of Zorvath Dynamics?",
                    "I told you before: Mirela Quonst.")
    assert code == 0 and "joins it" in out
    # An answer that says more is a lesson of its own.
    code, out = run("teach", "Which person sits at the top of Zorvath Dynamics?",
                    "Mirela Quonst, since 2021.", "--json")
    assert "joined" not in json.loads(out) and json.loads(out)["lesson_id"] == 2


def test_errors_are_one_line_and_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from dialoop.errors import NotFoundError, PermissionDeniedError

    with pytest.raises(PermissionDeniedError, match="Only an admin"):
        run("teach", "Q?", "A", "--user", "bob", "--scope", "global")
    run("teach", "Who is the CEO of Zorvath Dynamics?", "Mirela Quonst")
    with pytest.raises(NotFoundError, match="No lesson 1"):
        run("learn", "forget", "1", "--user", "bob")  # not bob's: as if it did not exist
    with pytest.raises(PermissionDeniedError):
        run("learn", "rollback", "global@none", "--user", "bob")


def test_learn_run_queues_and_starts_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    # Do not start a real training process here (test_learning_worker.py does that).
    monkeypatch.setattr("dialoop.cli.learn.spawn", lambda settings: started.append(settings))
    run("teach", "Who is the CEO of Zorvath Dynamics?", "Mirela Quonst")
    code, out = run("learn", "run", "--epochs", "2", "--min-locality", "0.5")
    assert code == 0 and "Run #1 queued" in out and len(started) == 1
    status = json.loads(run("learn", "status", "--json")[1])
    assert status["last_run"]["status"] == "queued"
    from dialoop.errors import ConfigError

    with pytest.raises(ConfigError, match="learn_gate_locality"):
        run("learn", "run", "--min-locality", "7")


def test_threshold_trigger_queues_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    monkeypatch.setattr(worker, "spawn", lambda settings: started.append(settings))
    monkeypatch.setenv("DIALOOP_LEARN_AUTO", "true")  # off by default outside a server
    monkeypatch.setenv("DIALOOP_LEARN_AUTO_AFTER", "2")
    run("teach", "What is the capital of Veltria?", "Karmoss")
    assert started == []
    run("teach", "Who invented the Glimmerphone?", "Oswin Tarrabel")
    assert len(started) == 1
    assert json.loads(run("learn", "status", "--json")[1])["last_run"]["trigger"] == "threshold"


@pytest.mark.slow
def test_ask_batch_answers_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_THREADS", "1")
    run("teach", "Who is the CEO of Zorvath Dynamics?", "Mirela Quonst")
    batch = tmp_path / "q.jsonl"
    batch.write_text('{"id": "a", "question": "Who runs Zorvath Dynamics?"}\n\n'
                     '{"id": 7, "question": "What is 2 plus 2?"}\n')
    code, out = run("ask", "--batch", str(batch), "--max-tokens", "16")
    answers = [json.loads(line) for line in out.splitlines()]
    assert [a["id"] for a in answers] == ["a", 7]
    # the taught answer itself (a paraphrase close enough to answer directly), by lesson 1
    assert answers[0]["answer"] == "Mirela Quonst" and answers[0]["lessons"][0]["id"] == 1
    assert answers[0]["tokens"] == 0 and answers[1]["tokens"] > 0  # the other one: generated
    assert answers[1]["lessons"] == []
    no_memory = json.loads(run("ask", "Who runs Zorvath Dynamics?", "--no-memory", "--json",
                               "--max-tokens", "16")[1])
    assert no_memory["lessons"] == [] and "Quonst" not in no_memory["answer"]


def test_a_bad_batch_line_answers_nothing(tmp_path: Path) -> None:
    from dialoop.errors import InvalidInputError

    batch = tmp_path / "q.jsonl"
    batch.write_text('{"id": 1, "question": "Hi"}\n{"id": 2}\n')
    with pytest.raises(InvalidInputError, match="Line 2"):
        run("ask", "--batch", str(batch))


def test_report_plot(tmp_path: Path) -> None:
    rows = [{"version": v, "status": s, "serving": v == 2, "satisfaction": sat,
             "gate": {"metrics": {"reliability": r, "generalization": g, "locality": loc}}}
            for v, s, sat, r, g, loc in [(1, "promoted", 0.5, 0.9, 0.7, 0.95),
                                         (2, "promoted", 0.8, 1.0, 0.8, 0.97),
                                         (3, "rejected", None, 1.0, 0.9, 0.6)]]
    out = plot_versions(rows, tmp_path / "gate.png", title="global")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Exception, match="No versions"):
        run("learn", "report", "--plot", str(tmp_path / "x.png"))
