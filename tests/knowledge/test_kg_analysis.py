"""Stage 1: what a question's words are about (knowledge/analysis.py), by table.

On the small graph of tests/knowledge/small_graph.py, without an embedder: names link
by their words, relations by their label and aliases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialoop.knowledge.analysis import Analysis, analyse, proper_names
from dialoop.knowledge.words import tokenize
from tests.knowledge.small_graph import SmallGraph, small_graph


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallGraph]:
    with small_graph(tmp_path_factory.mktemp("small-graph")) as graph:
        yield graph


def _fields(a: Analysis) -> dict[str, object]:
    """The analysis as a reader checks it: names for links, keys for named relations."""
    return {
        "anchors": [x.name for x in a.anchors], "classes": [c.mention for c in a.classes],
        "relations": sorted(m.key for m in a.relations if m.lexical),
        "comparisons": a.comparisons, "count": a.count, "order": a.order,
        "residual": a.residual, "question": a.question, "expects": a.expects,
        "yes_no": a.yes_no, "asks_unknown": a.asks_unknown, "unknown_names": a.unknown_names,
    }


@pytest.mark.parametrize(("question", "expected"), [
    # who/where want an entity, and the relation is named by an alias ("wrote")
    ("Who wrote Salt Orchard?",
     {"anchors": ["Salt Orchard"], "relations": ["author"], "expects": "entity",
      "question": True, "residual": [], "yes_no": False}),
    # a class named in the question ("country") is a class, not an individual
    ("In which country was the author of Glass Lighthouse born?",
     {"anchors": ["Glass Lighthouse"], "classes": ["country"],
      "relations": ["author", "birthplace", "country"], "expects": "entity"}),
    ("When was Salt Orchard published?", {"expects": "value", "relations": ["published"]}),
    ("How much is the Aurora Lamp?",
     {"anchors": ["Aurora Lamp"], "relations": ["price"], "expects": "value"}),
    ("What does Brightwell Labs make?", {"anchors": ["Brightwell Labs"], "expects": None}),
    # a misspelled name still links (fuzzy), well above MIN_ANCHOR_SCORE
    ("Where was Mara Quel born?", {"anchors": ["Mara Quell"], "relations": ["birthplace"]}),
    # comparisons: the operator and the number; the comparison's words are not residual
    ("Which products cost less than 30 euros?",
     {"classes": ["products"], "relations": ["price"], "comparisons": [("<", 30.0)],
      "residual": ["euros"], "anchors": []}),
    ("Which products cost between 40 and 10 euros?",
     {"comparisons": [(">=", 10.0), ("<=", 40.0)]}),
    ("Which products cost at most 20 euros?", {"comparisons": [("<=", 20.0)]}),
    ("Which products weigh at least 2 kg?", {"comparisons": [(">=", 2.0)], "relations": ["weight"]}),
    ("Which books were published before 2005?",
     {"comparisons": [("<", 2005.0)], "classes": ["books"], "residual": []}),
    # superlatives: the order, and the relation they usually mean ("cheapest" → price)
    ("What is the cheapest product?",
     {"order": "asc", "relations": ["price"], "classes": ["product"], "residual": []}),
    ("What is the heaviest product?", {"order": "desc", "relations": ["weight"]}),
    ("What is the oldest book?", {"order": "asc", "relations": [], "classes": ["book"]}),
    ("How many products are there?", {"count": True, "classes": ["products"], "residual": []}),
    ("How many books did Mara Quell write?",
     {"count": True, "anchors": ["Mara Quell"], "classes": ["books"], "relations": ["author"],
      "residual": []}),  # "write" is a form of the author relation's "wrote"
    # "the <unexplained word> of X": a relation the graph does not have
    ("What is the nickname of Mara Quell?",
     {"anchors": ["Mara Quell"], "residual": ["nickname"], "asks_unknown": True}),
    # half of "publication year" is no relation: both words stay unexplained
    ("What is the publication date of Salt Orchard?",
     {"anchors": ["Salt Orchard"], "residual": ["publication", "date"], "asks_unknown": True}),
    ("What is the phone number of Mara Quell?",  # "number" asks for nothing by itself
     {"anchors": ["Mara Quell"], "residual": ["phone"], "asks_unknown": False}),
    # an unknown capitalized name, asked with a known relation
    ("What is the price of the Zephyr Blender?",
     {"anchors": [], "relations": ["price"], "unknown_names": ["Zephyr Blender"]}),
    ("Does Nimbus Home ship to Atlantis?", {"unknown_names": ["Atlantis"], "yes_no": True}),
    ("Does Nimbus Home ship to the USA?", {"unknown_names": [], "yes_no": True}),  # an acronym
    ("Do you ship to Ostmark?",
     {"anchors": ["Ostmark"], "relations": ["ships_to"], "yes_no": True, "residual": []}),
    ("What are your opening hours?",
     {"anchors": [], "relations": ["opening_hours"], "residual": []}),
    # requests are questions too; a statement is not
    ("List the products", {"question": True, "classes": ["products"]}),
    ("Write a haiku about autumn.",
     {"question": False, "anchors": [], "residual": ["haiku", "autumn"]}),
])
def test_analysis_of_a_question(g: SmallGraph, question: str, expected: dict[str, object]
                                ) -> None:
    fields = _fields(analyse(question, "u", g.graph, g.linker, g.matcher))
    assert {k: fields[k] for k in expected} == expected


def test_the_trace_shows_what_was_understood(g: SmallGraph) -> None:
    a = analyse("Which products cost less than 30 euros?", "u", g.graph, g.linker, g.matcher)
    d = a.to_dict()
    assert d["classes"][0]["mention"] == "products" and d["comparisons"] == [("<", 30.0)]
    assert {"relation": "price", "score": 1.0, "lexical": True} in d["relations"]
    assert set(d) == {"anchors", "classes", "relations", "comparisons", "count", "order",
                      "residual", "expects", "unknown_names"}


@pytest.mark.parametrize(("text", "names"), [
    ("Where was the spouse of Rhea Tolliver born?", [["Rhea", "Tolliver"]]),
    ("Who is Ada and who is Ivo Brand?", [["Ada"], ["Ivo", "Brand"]]),
    ("Mara is not a name at the start", []),
    ("What do I know?", []),  # "I" is not a name
])
def test_proper_names_are_capitalized_runs_after_the_first_word(text: str,
                                                                names: list[list[str]]) -> None:
    assert proper_names(tokenize(text)) == names
