"""The act loop of the manager: step limit, guards, failures, and the seams for others."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.manager import DialogueManager
from dialoop.dialogue.state import DialogueState
from dialoop.evidence import Evidence
from tests.fakes import FakeEngine


@pytest.fixture
def engine() -> FakeEngine:
    """The manager of a domain whose intents are certain never asks the model."""
    return FakeEngine()


TOOLS = """\
CALLS = []

def ping():
    CALLS.append("ping")
    return {"pong": True}

def pong():
    CALLS.append("pong")
    return {"ping": True}

def boom():
    raise KeyError("secret internals")
"""


def domain(tmp_path: Path, rules: str, *, max_steps: int = 4, templates: str = "") -> Domain:
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "domain.yaml").write_text(textwrap.dedent("""\
        name: loop
        intents:
          anything: {examples: [hi]}
        tools:
          ping: {function: tools.py:ping}
          pong: {function: tools.py:pong}
          boom: {function: tools.py:boom}
        policy:
          max_steps: %d
          rules:
        """) % max_steps + textwrap.indent(textwrap.dedent(rules), "    ") + templates)
    return load_domain(tmp_path / "domain.yaml")


def test_the_step_limit_forces_an_answer(tmp_path: Path, engine: FakeEngine) -> None:
    d = domain(tmp_path, """\
        - {when: {acted: false}, action: call_tool ping}
        - {when: {acted: call_tool ping}, action: call_tool pong}
        - {when: {}, action: call_tool ping}
        """, max_steps=2)
    plan = DialogueManager(d, engine=engine).plan("hi", user="u")
    steps = plan.trace.steps
    assert [s.action for s in steps] == ["call_tool:ping", "answer"]
    assert steps[1].why.endswith("but this is the last step allowed in a turn: answer")


def test_a_tool_is_not_run_twice_in_a_turn(tmp_path: Path, engine: FakeEngine) -> None:
    d = domain(tmp_path, "- {when: {}, action: call_tool ping}\n")
    plan = DialogueManager(d, engine=engine).plan("hi", user="u")
    assert [s.action for s in plan.trace.steps] == ["call_tool:ping", "answer"]
    assert "ping already ran in this turn" in plan.trace.why
    assert len(plan.trace.tool_calls) == 1
    # A successful result without a template goes to the model as evidence.
    assert plan.text is None
    assert plan.evidence == [Evidence("tool", "ping returned: {'pong': True}", "tool:ping")]


def test_a_failing_tool_without_a_template_gets_a_fixed_apology(
    tmp_path: Path, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    d = domain(tmp_path, """\
        - {when: {acted: false}, action: call_tool boom}
        - {when: {}, action: answer}
        """)
    with caplog.at_level(logging.ERROR):
        plan = DialogueManager(d, engine=engine).plan("hi", user="u")
    assert plan.text == "Sorry, I could not do that: The boom tool failed unexpectedly; " \
                        "the error was logged."
    assert plan.trace.tool_calls[0]["ok"] is False
    assert "secret internals" not in plan.text
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_a_template_that_fails_to_render_falls_back_to_the_model(
    tmp_path: Path, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    d = domain(tmp_path, """\
        - {when: {acted: false}, action: call_tool ping}
        - {when: {}, action: answer}
        """, templates="templates:\n  ping: '{{ result.missing_key.deeper }}'\n")
    with caplog.at_level(logging.ERROR):
        plan = DialogueManager(d, engine=engine).plan("hi", user="u")
    assert plan.text is None and plan.trace.response == "generated"
    assert any("template 'ping'" in r.message for r in caplog.records)


class Lessons:
    """An evidence provider (a document index, say)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def find(self, message: str, *, user: str, state: DialogueState) -> list[Evidence]:
        self.asked.append((message, user))
        return [Evidence("lesson", "The answer is 42.", "lesson:1")]


class PerUser:
    def adapter_for(self, user: str, message: str) -> str | None:
        return f"{user}-lora"


def test_evidence_providers_and_the_adapter_choice_reach_the_plan(
    tmp_path: Path, engine: FakeEngine
) -> None:
    lessons = Lessons()
    d = domain(tmp_path, "- {when: {}, action: answer}\n")
    manager = DialogueManager(d, engine=engine, evidence=[lessons], adapters=[PerUser()])
    plan = manager.plan("what is the answer?", user="ann", system="Be brief.")
    assert lessons.asked == [("what is the answer?", "ann")]
    assert plan.evidence == [Evidence("lesson", "The answer is 42.", "lesson:1")]
    assert plan.adapter == "ann-lora" and plan.system == "Be brief."
    assert plan.trace.evidence[0].source == "lesson:1"


def test_slots_a_tool_sets_are_applied_to_the_state(tmp_path: Path, engine: FakeEngine) -> None:
    # A Rasa custom action's slot events arrive as the result's "slots".
    (tmp_path / "tools.py").write_text(
        "def open_ticket():\n"
        "    return {'slots': {'ticket': '42', 'draft': None, 'elsewhere': 1}}\n")
    (tmp_path / "domain.yaml").write_text(textwrap.dedent("""\
        name: desk
        slots:
          ticket: {type: number}
          draft: {type: text}
        intents:
          anything: {examples: [hi, hello, hi there]}
          bye: {examples: [goodbye, see you later, bye bye]}
        tools:
          open_ticket: {function: tools.py:open_ticket}
        policy:
          rules:
            - {when: {acted: false}, action: call_tool open_ticket}
            - {when: {}, action: answer}
        templates: {open_ticket: "Ticket {{ slots.ticket }} is open."}
        """))
    d = load_domain(tmp_path / "domain.yaml")
    before = DialogueState(intent="anything", slots={"draft": "old words"})

    class Said:
        role, state = "assistant", before.to_dict()

    plan = DialogueManager(d, engine=engine).plan("hi", user="u", turns=[Said()])
    assert plan.state.slots == {"ticket": 42}
    assert plan.text == "Ticket 42 is open."
