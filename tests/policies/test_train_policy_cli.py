"""``dialoop train policy``: trains, gates, stores; ``simulate`` and ``chat`` serve the version."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.config import load_settings
from dialoop.store import open_database
from dialoop.store.models import Turn


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("dialoop.dialogue.manager").setLevel(logging.CRITICAL)


def run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_train_store_gate_and_serve_a_policy_version(write_domain, dialoop_home: Path) -> None:  # type: ignore[no-untyped-def]
    domain = str(write_domain())
    out = json.loads(run("train", "policy", "--domain", domain, "--method", "supervised",
                         "--dialogues", "30", "--gate-dialogues", "30", "--json"))
    assert out["version"] == "tiny@v1" and out["status"] == "promoted"
    gate = out["report"]["gate"]
    assert gate["passed"] and gate["baseline"] == "rule"
    assert "tests" not in gate  # the tiny domain has no test dialogues next to it

    text = run("train", "policy", "--domain", domain, "--method", "rl", "--steps", "64",
               "--no-gate")
    assert "tiny@v2 (rl)" in text and "not gated" in text and "TensorBoard logs:" in text
    assert list((dialoop_home / "runs").glob("policy-tiny-rl-*/ppo-tiny_*/events.*"))

    listing = run("train", "policies", "--domain", domain)
    assert "* v1" in listing and "  v2" in listing and "candidate" in listing

    for ref in ("v1", "serving"):
        sim = json.loads(run("simulate", "--domain", domain, "--dialogues", "20", "--noise",
                             "0.2", "--policy", ref, "--json"))
        assert sim["policy"] == "tiny@v1" and sim["task_success"] >= 0.7

    assert "serving the rules" in run("train", "policies", "--domain", domain,
                                      "--rollback", "none")
    result = CliRunner().invoke(cli, ["simulate", "--domain", domain, "--policy", "serving"])
    assert result.exit_code == 1 and "No policy version serves" in str(result.exception)


def test_chat_answers_with_the_stored_version(write_domain, dialoop_home: Path) -> None:  # type: ignore[no-untyped-def]
    """The decision in the stored trace is the version's (a tool call and its template:
    no generated words are looked at)."""
    domain = str(write_domain())
    run("train", "policy", "--domain", domain, "--method", "supervised", "--dialogues", "20",
        "--no-gate")
    run("chat", "--domain", domain, "--policy", "v1", input="Has order 1234 shipped?\n")
    db = open_database(load_settings().resolved_database_url)
    try:
        with db.read() as s:
            traces = [t for t in s.scalars(sa.select(Turn.trace).where(Turn.role == "assistant"))]
    finally:
        db.close()
    dialogue = traces[-1]["dialogue"]
    assert dialogue["policy"] == "tiny@v1"
    assert [step["action"] for step in dialogue["steps"]] == ["call_tool:lookup_order", "answer"]
    assert all(step["policy"] == "tiny@v1" for step in dialogue["steps"])
