"""`dialoop eval dialogue` on the real pipeline, and the general assistant's trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dialoop.assistant import Assistant
from dialoop.cli import cli

STORE = Path(__file__).resolve().parents[2] / "examples" / "store_support"
SUBSET = ["status needs the order number", "return with a corrected number at the read-back",
          "return already started", "shipping to Canada", "hand-off after a failed look-up",
          "out of scope weather"]


@pytest.mark.slow
def test_eval_dialogue_scores_both_policies_and_lists_failures(tmp_path: Path) -> None:
    scripts = yaml.safe_load((STORE / "tests.yaml").read_text())["dialogues"]
    chosen = [d for d in scripts if d["name"] in SUBSET]
    # One dialogue that must fail, to see the failure listing.
    chosen.append({"name": "deliberately wrong", "turns": [
        {"user": "Where is order 5521?", "intent": "return_request", "actions": ["hand_off"]}],
        "goal": {"handed_off": True}})
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump({"dialogues": chosen}))

    args = ["eval", "dialogue", "--domain", str(STORE / "domain.yaml"), "--tests", str(tests)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rule, learned = result.stdout.split("learned policy")  # stderr has the progress bars
    assert "rule policy · 7 dialogues" in rule and " · 7 dialogues" in learned
    for report in (rule, learned):
        assert "task success         0.857  (target 0.85: met)" in report
        assert "- deliberately wrong [FAILED]" in report
        assert "intent order_status (p=" in report and "expected return_request" in report
        assert report.count("[FAILED]") == 1
        assert _metric(report, "intent accuracy") >= 0.9
        assert _metric(report, "joint goal accuracy") >= 0.8
    # The learned policy may not make the assistant worse than the rules.
    for metric in ("action accuracy", "task success"):
        assert _metric(learned, metric) >= _metric(rule, metric)


@pytest.mark.slow
def test_eval_dialogue_json(tmp_path: Path) -> None:
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump({"dialogues": [{"name": "hi", "turns": [
        {"user": "Where is order 6120?", "intent": "order_status", "slots": {"order_number": 6120},
         "actions": ["call_tool:lookup_order", "answer"], "reply_contains": ["delivered"]}]}]}))
    result = CliRunner().invoke(cli, [
        "eval", "dialogue", "--domain", str(STORE / "domain.yaml"), "--tests", str(tests),
        "--policy", "learned", "--json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["policy"] == "learned" and report["failures"] == {}
    assert report["intent_accuracy"] == report["slot_f1"] == report["task_success"] == 1.0


def _metric(report: str, name: str) -> float:
    line = next(x for x in report.splitlines() if x.strip().startswith(name))
    return float(line.split()[len(name.split())])


def test_the_general_assistant_traces_a_plain_answer(assistant: Assistant) -> None:
    reply = assistant.ask("Say hello.", params=assistant.default_params(max_tokens=16))
    session = assistant.parts.sessions.get(reply.session_id, "local")
    trace = assistant.parts.sessions.turns(session)[-1].trace["dialogue"]
    assert trace["domain"] == "general" and trace["intent"]["intent"] == "chat"
    assert [s["action"] for s in trace["steps"]] == ["answer"]
    assert trace["response"] == "generated" and reply.text
