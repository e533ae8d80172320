"""Knowledge inside task dialogues (issue 15): with a domain, the ``look_up`` action asks
the same knowledge as general mode (the user's graph and documents) besides the domain's
facts file, graph answer first, each piece with its source; a graph that declines adds
nothing and never pre-empts the domain's own answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.assistant import open_assistant
from dialoop.config import Settings
from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.engine.embedding import default_embedder
from dialoop.evidence import Scope
from tests.fakes import ScriptedEngine

STORE = Path(__file__).resolve().parents[2] / "examples" / "store_support"


@pytest.fixture(scope="module")
def store() -> Domain:
    return load_domain(STORE / "domain.yaml")


@pytest.fixture(scope="module")
def classifier(store: Domain) -> IntentClassifier:
    return IntentClassifier(store, default_embedder())


def _ask(settings: Settings, store: Domain, classifier: IntentClassifier, question: str,
         *, user: str | None = None) -> tuple[str, dict]:
    engine = ScriptedEngine(lambda prompt, adapter: "GENERATED")
    with open_assistant(settings, engine=engine, domain=store, policy="rule",
                        classifier=classifier) as bot:
        reply = bot.ask(question, user=user)
        session = bot.parts.sessions.get(reply.session_id, user or settings.user)
        turn = next(t for t in bot.parts.sessions.turns(session) if t.id == reply.turn_id)
        return reply.text, turn.trace["dialogue"]


def _import(settings: Settings, store: Domain, *, user: str, private: bool = False) -> None:
    engine = ScriptedEngine(lambda prompt, adapter: "GENERATED")
    with open_assistant(settings, engine=engine, domain=store, policy="rule") as bot:
        kb = bot.parts.knowledge
        assert kb is not None
        kb.import_file(STORE / "knowledge.jsonl", user=user,
                       scope=Scope.of(user) if private else None)


def test_a_product_question_only_the_graph_answers_is_answered_with_its_citation(
        settings: Settings, store: Domain, classifier: IntentClassifier) -> None:
    question = "What is the price of the Stratus Lamp?"  # facts.yaml has it too: fused
    _import(settings, store, user=settings.user)
    text, trace = _ask(settings, store, classifier, "Which category is the Stratus Lamp in?")
    assert trace["intent"]["intent"] == "product_question"
    assert "look_up" in [s["action"] for s in trace["steps"]]
    assert "Lighting" in text and "[triple:" in text  # facts.yaml has no category
    assert trace["knowledge"] is not None and trace["knowledge"]["found"]
    sources = [e["source"] for e in trace["steps"][0]["evidence"]]
    assert sources[0].startswith("triple:")
    text, trace = _ask(settings, store, classifier, question)
    evidence = trace["steps"][0]["evidence"]
    assert evidence[0]["kind"] == "knowledge"  # the graph's answer first, then the facts file
    assert any(e["source"].startswith("facts.yaml#") for e in evidence[1:])


def test_without_a_graph_the_facts_file_still_answers(
        settings: Settings, store: Domain, classifier: IntentClassifier) -> None:
    text, trace = _ask(settings, store, classifier, "How much is the Stratus Lamp?")
    assert "59" in text and trace["knowledge"] is not None  # asked: the graph is empty
    assert not trace["knowledge"]["found"]


def test_one_users_private_graph_never_answers_another(
        settings: Settings, store: Domain, classifier: IntentClassifier) -> None:
    _import(settings, store, user="ann", private=True)
    text, _ = _ask(settings, store, classifier, "Which category is the Stratus Lamp in?",
                   user="bob")
    assert "Lighting" not in text
    text, _ = _ask(settings, store, classifier, "Which category is the Stratus Lamp in?",
                   user="ann")
    assert "Lighting" in text
