"""The built-in tools: the calculator's arithmetic and its refusals, and the knowledge tools,
which show each user the global knowledge plus their own and never another user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.agent.builtin import BUILTIN_TOOLS, builtin_tools, calculator
from dialoop.agent.tools import ToolContext, ToolError, ToolRegistry
from dialoop.config import load_settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.store import open_database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("expression", "result"), [
    ("1234 * 5678", 7006652), ("(17 + 4) * 3", 63), ("2^10", 1024), ("2 ** 0.5 * 2 ** 0.5", 2),
    ("0.1 + 0.2", 0.3), ("7 // 2 + 7 % 2", 4), ("-3 + +5", 2), ("sqrt(144) / 4", 3),
    ("round(pi, 2)", 3.14), ("max(3, 9, 4) - min(2, 8)", 7), ("12 × 3 ÷ 4", 9),
    ("factorial(20)", 2432902008176640000), ("log10(1000)", 3), ("1e3 / 8", 125),
])
def test_calculator_computes(expression: str, result: float) -> None:
    assert calculator(expression) == {"expression": expression, "result": result}


@pytest.mark.parametrize(("expression", "problem"), [
    ("", "empty"), ("1 +", "not an arithmetic"), ("1/0", "zero"), ("9**9**9", "too large"),
    ("10 ** 401", "too large"), ("factorial(1000)", "up to 200"), ("__import__('os')", "not something"),
    ("open('x')", "not something"), ("x + 1", "not something"), ("(1).real", "Only numbers"),
    ("1,234 + 1", "thousands"), ("'a' * 3", "Only numbers"), ("[1] * 3", "Only numbers"),
    ("sqrt(-1)", "Cannot compute"), ("True + 1", "not a number"), ("lambda: 1", "Only numbers"),
    ("1" * 301, "longer than"), ("(-8) ** (1/3)", "does not give a number"),
])
def test_calculator_refuses_with_a_clear_message(expression: str, problem: str) -> None:
    with pytest.raises(ToolError, match=problem):
        calculator(expression)


def test_builtin_tools_without_knowledge_are_the_time_and_the_calculator() -> None:
    assert [t.name for t in builtin_tools(None)] == ["current_time", "calculator"]
    assert builtin_tools(None) == BUILTIN_TOOLS
    call = ToolRegistry(builtin_tools(None)).call("calculator", {"expression": "6*7"},
                                                  ToolContext(user="ann"))
    assert call.ok and call.result["result"] == 42


@pytest.fixture(scope="module")
def store_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    """The store_support graph for everyone, a private fact and a private document of ann's."""
    home = tmp_path_factory.mktemp("agent-kb")
    settings = load_settings(home=home)
    db = open_database(settings.resolved_database_url)
    kb = KnowledgeBase(db, settings)
    kb.import_file(EXAMPLES / "store_support" / "knowledge.jsonl", user="operator")
    kb.add_fact("Aurora Kettle", "gift note", "Happy birthday, Sam", user="ann",
                scope=Scope.of("ann"))
    note = home / "ann-notes.md"
    note.write_text("# Spare key\n\nThe spare key of ann's flat is under the blue flower pot.\n")
    kb.import_file(note, user="ann", scope=Scope.of("ann"))
    yield kb
    db.close()


def _call(kb: KnowledgeBase, user: str, name: str, **arguments: str):  # type: ignore[no-untyped-def]
    return ToolRegistry(builtin_tools(kb)).call(name, arguments, ToolContext(user=user))


@pytest.mark.slow
def test_knowledge_query_answers_with_cited_facts(store_kb: KnowledgeBase) -> None:
    call = _call(store_kb, "bob", "knowledge_query", question="How much is the Aurora Kettle?")
    assert call.ok, call.error
    assert "49" in call.result["answer"]
    assert all(f["source"].startswith("triple:") for f in call.result["facts"])
    listed = _call(store_kb, "bob", "knowledge_query", entity="Cirrus Blender")
    assert any("1200" in f["fact"] for f in listed.result["facts"])
    missing = _call(store_kb, "bob", "knowledge_query", entity="Flux Capacitor")
    assert not missing.ok and "no entity" in missing.error
    assert not _call(store_kb, "bob", "knowledge_query").ok  # neither question nor entity


@pytest.mark.slow
def test_knowledge_tools_keep_a_users_facts_and_documents_theirs(store_kb: KnowledgeBase) -> None:
    def facts(user: str) -> str:
        return str(_call(store_kb, user, "knowledge_query", entity="Aurora Kettle").result)

    assert "Happy birthday" in facts("ann") and "Happy birthday" not in facts("bob")
    query = "Where is the spare key of the flat?"
    ann = _call(store_kb, "ann", "document_search", query=query)
    bob = _call(store_kb, "bob", "document_search", query=query)
    assert ann.ok and "flower pot" in ann.result["passages"][0]["text"]
    assert ann.result["passages"][0]["source"].startswith("ann-notes.md#")
    assert bob.ok and "flower pot" not in str(bob.result)
