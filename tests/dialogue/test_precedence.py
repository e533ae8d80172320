"""Who decides what is said: the manager's precedence, rule by rule (PRECEDENCE).

Each case builds the situation one rule is about and checks the plan's text, the
trace's action and ``decided_by``, and that only the winner's effect reached the state.
No model: intents are certain, and a generated answer is only ever planned here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from dialoop.dialogue.domain import Domain, general_domain, load_domain
from dialoop.dialogue.manager import PRECEDENCE, DialogueManager
from dialoop.dialogue.state import DialogueState
from dialoop.evidence import Evidence, LessonMatch, Recall, Scope
from tests.fakes import FakeEngine

TOOLS = """\
def lookup(order_number):
    return {"status": "shipped"}
"""
TAUGHT = "Order 5521 shipped on Monday."


class Memory:
    """The correction memory's seam: one lesson, sure or not."""

    def __init__(self, *, sure: bool) -> None:
        self.recall_of = Recall([LessonMatch(7, "Where is order 5521?", TAUGHT,
                                             Scope.of("ann"), 0.93 if sure else 0.75)], sure)

    def recall(self, message: str, *, user: str) -> Recall:
        return self.recall_of


class Knowledge:
    """The knowledge graph's seam: a fixed reply (None: only evidence)."""

    def __init__(self, reply: str | None, *, declined: bool = False) -> None:
        self.asked = 0
        self.result = SimpleNamespace(
            reply=reply, declined=declined, answer=None if reply is None else reply,
            evidence=[] if declined else [
                Evidence("triple", "Order 5521 status shipped", "triple:1")],
            describe=lambda: {"found": not declined, "declined": declined})

    def lookup(self, question: str, *, user: str):  # type: ignore[no-untyped-def]
        self.asked += 1
        return self.result


def store_domain(tmp_path: Path, rules: str, templates: str = "") -> Domain:
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "domain.yaml").write_text(textwrap.dedent("""\
        name: orders
        intents:
          order_status:
            requires: [order_number]
            examples: [where is my order, where is my order 5521, track my parcel,
                       has my order shipped]
          greet: {examples: [hello, hi there, good morning, hey]}
        slots:
          order_number: {type: number, question: 'What is your order number?'}
        tools:
          lookup:
            function: tools.py:lookup
            parameters:
              type: object
              properties: {order_number: {type: integer}}
              required: [order_number]
        policy:
          rules:
        """) + textwrap.indent(textwrap.dedent(rules), "    ") + templates)
    return load_domain(tmp_path / "domain.yaml")


def plan(domain: Domain, message: str, *, memory: Memory | None = None,
         grounding: Knowledge | None = None, before: DialogueState | None = None):  # type: ignore[no-untyped-def]
    turns = []
    if before is not None:  # an earlier answer whose stored state the turn continues
        turns = [SimpleNamespace(role="assistant", state=before.to_dict())]
    manager = DialogueManager(domain, engine=FakeEngine(), memory=memory, grounding=grounding)
    return manager.plan(message, user="ann", turns=turns)


def test_the_rules_are_written_once_in_order() -> None:
    assert [name for name, _ in PRECEDENCE] == [
        "hand_off", "tool", "task", "lesson", "knowledge", "policy", "model"]


def test_a_hand_off_beats_a_sure_lesson(tmp_path: Path) -> None:
    d = store_domain(tmp_path, "- {when: {}, action: hand_off}\n")
    p = plan(d, "where is my order 5521", memory=Memory(sure=True))
    assert p.trace.decided_by == "hand_off" and p.trace.action == "hand_off"
    assert p.state.handed_off and p.handed_off and p.text != TAUGHT


def test_a_tool_that_ran_beats_a_sure_lesson(tmp_path: Path) -> None:
    d = store_domain(tmp_path, """\
        - {when: {acted: false}, action: call_tool lookup}
        - {when: {}, action: answer}
        """, templates="templates:\n  lookup: 'It is {{ result.status }}.'\n")
    p = plan(d, "where is my order 5521", memory=Memory(sure=True))
    assert p.trace.decided_by == "tool" and p.text == "It is shipped."
    assert p.trace.tool_calls[0]["ok"] is True


def test_a_question_the_task_needs_beats_a_sure_lesson(tmp_path: Path) -> None:
    # The policy wants the tool; the guard asks for its missing argument instead.
    d = store_domain(tmp_path, "- {when: {}, action: call_tool lookup}\n")
    p = plan(d, "where is my order", memory=Memory(sure=True))
    assert p.trace.decided_by == "task" and p.trace.action == "clarify:order_number"
    assert p.text == "What is your order number?"
    assert p.state.requested == "order_number"  # the question's effect applies


def test_an_answer_to_our_question_is_not_taken_over_by_a_lesson(tmp_path: Path) -> None:
    d = store_domain(tmp_path, """\
        - {when: {missing: true}, action: clarify}
        - {when: {}, action: answer}
        """, templates="templates:\n  order_status: 'Checking order {{ slots.order_number }}.'\n")
    asked = DialogueState(intent="order_status", requested="order_number")
    p = plan(d, "5521", memory=Memory(sure=True), before=asked)
    assert p.trace.decided_by == "task" and p.text == "Checking order 5521."


def test_a_sure_lesson_beats_the_policys_own_question_and_leaves_no_trace_of_it(
        tmp_path: Path) -> None:
    d = store_domain(tmp_path, "- {when: {}, action: clarify}\n")
    p = plan(d, "where is my order", memory=Memory(sure=True))
    assert p.text == TAUGHT and p.trace.response == "lesson"
    assert p.trace.decided_by == "lesson" and p.trace.action == "answer"
    assert "lesson 7 taught this answer" in p.trace.why
    assert p.trace.steps[-1].action.startswith("clarify")  # what the policy wanted, kept
    assert p.state.requested is None  # but its question was not asked
    assert p.memory == "direct" and p.adapter is None


def test_a_sure_lesson_beats_a_template(tmp_path: Path) -> None:
    d = store_domain(tmp_path, "- {when: {}, action: answer}\n",
                     templates="templates:\n  order_status: 'Orders ship in 2 days.'\n")
    assert plan(d, "where is my order 5521", memory=Memory(sure=True)).text == TAUGHT
    p = plan(d, "where is my order 5521", memory=Memory(sure=False))
    assert p.text == "Orders ship in 2 days." and p.trace.decided_by == "policy"


def test_a_sure_lesson_beats_the_knowledge_graph_which_beats_the_model() -> None:
    general = general_domain()
    graph = Knowledge("Order 5521 is shipped [triple:1].")
    p = plan(general, "where is order 5521?", memory=Memory(sure=True), grounding=graph)
    assert p.trace.decided_by == "lesson" and graph.asked == 0  # not even asked
    p = plan(general, "where is order 5521?", memory=Memory(sure=False), grounding=graph)
    assert p.trace.decided_by == "knowledge" and p.text == "Order 5521 is shipped [triple:1]."
    assert p.trace.knowledge == {"found": True, "declined": False}


def test_a_graph_decline_never_hides_a_lesson() -> None:
    """The graph knows the subject but not the relation ("no "ceo" for …"); a lesson that
    matched, even below the sure bar, is the answer, not "I don't know"."""
    graph = Knowledge("I don't know: my knowledge base has no \"ceo\" for order 5521.",
                      declined=True)
    p = plan(general_domain(), "where is order 5521?", memory=Memory(sure=False),
             grounding=graph)
    assert p.text == TAUGHT and p.trace.decided_by == "lesson" and graph.asked == 1
    assert p.lessons[0].lesson_id == 7 and p.trace.knowledge == {"found": False,
                                                                 "declined": True}
    # With no lesson the decline stands: the graph knows what it cannot answer.
    p = plan(general_domain(), "where is order 5521?", grounding=graph)
    assert p.trace.decided_by == "knowledge" and p.text.startswith("I don't know")


def test_otherwise_the_model_writes_it_from_all_the_evidence() -> None:
    graph = Knowledge(None)  # the graph has evidence but no answer of its own
    p = plan(general_domain(), "where is order 5521?", memory=Memory(sure=False),
             grounding=graph)
    assert p.text is None and p.trace.decided_by == "model"
    assert [e.source for e in p.evidence] == ["triple:1", "lesson:7"]
    assert p.memory == "prompt" and p.lessons[0].lesson_id == 7


@pytest.mark.parametrize("fixed, expected", [(None, "user:ann@v2"), ("none", None),
                                             ("global@v1", "global@v1")])
def test_the_adapter_is_chosen_in_the_plan(fixed: str | None, expected: str | None) -> None:
    class Lines:
        def adapter_for(self, user: str, message: str) -> str | None:
            return f"user:{user}@v2"

    manager = DialogueManager(general_domain(), engine=FakeEngine(), adapters=[
        SimpleNamespace(adapter_for=lambda user, message: None), Lines()])
    assert manager.plan("hello", user="ann", adapter=fixed).adapter == expected
    # fixed wording is not generated: no adapter is involved
    taught = DialogueManager(general_domain(), engine=FakeEngine(), memory=Memory(sure=True),
                             adapters=[Lines()])
    assert taught.plan("where is order 5521?", user="ann").adapter is None
