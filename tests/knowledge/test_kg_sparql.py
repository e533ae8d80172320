"""SPARQL over the graph a user sees: rdflib runs it, scopes hold, nothing is written."""

from __future__ import annotations

import json

import pytest

from dialoop.errors import InvalidInputError
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.sparql import run_sparql

ALL = "SELECT ?s ?p ?o WHERE { ?s ?p ?o }"


@pytest.fixture
def shared(kb: KnowledgeBase) -> KnowledgeBase:
    kb.add_fact("Aurora Lamp", "price", "19.99 EUR", user="admin", scope=Scope.everyone())
    kb.add_fact("Aurora Lamp", "made by", "Lumina", user="admin", scope=Scope.everyone())
    kb.add_fact("Ann", "salary", "91000", user="ann")  # only ann sees it
    kb.add_fact("Ann", "secret hobby", "Falconry", user="ann")
    return kb


def _rows(kb: KnowledgeBase, query: str, user: str) -> list[dict[str, str]]:
    data = json.loads(run_sparql(kb.graph, query, user).serialize("json"))
    return [{k: v["value"] for k, v in row.items()} for row in data["results"]["bindings"]]


def test_select_with_predeclared_prefixes(shared: KnowledgeBase) -> None:
    rows = _rows(shared, "SELECT ?price WHERE { ?lamp rdfs:label 'Aurora Lamp' ; "
                         "r:price ?price }", "bob")
    assert [r["price"] for r in rows] == ["19.99"]


def test_bob_never_sees_anns_private_facts(shared: KnowledgeBase) -> None:
    def text(user: str) -> str:
        return json.dumps(_rows(shared, ALL, user))

    assert "91000" in text("ann") and "Falconry" in text("ann")
    bob = text("bob")
    assert "91000" not in bob and "Falconry" not in bob and "salary" not in bob
    assert "Lumina" in bob  # the global facts are there
    asked = run_sparql(shared.graph, "ASK { ?s r:salary ?o }", "bob").serialize("json")
    assert json.loads(asked)["boolean"] is False


def test_csv_and_construct(shared: KnowledgeBase) -> None:
    csv_text = run_sparql(shared.graph, "SELECT ?o WHERE { ?s r:made%20by ?o }",
                          "bob").serialize("csv")
    assert csv_text.splitlines()[0] == "o" and "Lumina" in csv_text
    result = run_sparql(shared.graph, "CONSTRUCT { ?s r:price ?o } WHERE { ?s r:price ?o }",
                        "bob")
    assert result.formats() == ("turtle",) and "19.99" in result.serialize("turtle")
    with pytest.raises(InvalidInputError, match="turtle"):
        result.serialize("csv")


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT ?s WHERE {", "does not parse"),
    ("INSERT DATA { <urn:a> <urn:b> <urn:c> }", "read-only"),
    ("DELETE WHERE { ?s ?p ?o }", "read-only"),
    ("SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }", "SERVICE"),
    ("SELECT * FROM <http://example.org/g> WHERE { ?s ?p ?o }", "FROM"),
    ("  ", "empty"),
])
def test_refused_queries_change_nothing(shared: KnowledgeBase, query: str,
                                        message: str) -> None:
    before = _rows(shared, ALL, "ann")
    with pytest.raises(InvalidInputError, match=message):
        run_sparql(shared.graph, query, "ann")
    assert _rows(shared, ALL, "ann") == before
