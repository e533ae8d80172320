"""Stage 3: typed queries run on a small graph (knowledge/execution.py), by table; the
choice among walked paths (``best_signature``) on hand-made paths; and the stages
composed by the Reasoner."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dialoop.knowledge.execution import BRIDGE_SCORE, Answer, best_signature, execute
from dialoop.knowledge.linking import RelationMention
from dialoop.knowledge.query import (
    Decline,
    Describe,
    PathQuery,
    Query,
    SetQuery,
    SoleSubject,
    UnknownEntity,
    Unrelated,
)
from dialoop.knowledge.traversal import Hop, Path
from tests.knowledge.small_graph import SmallGraph, small_graph


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallGraph]:
    with small_graph(tmp_path_factory.mktemp("small-graph")) as graph:
        yield graph


# A query is written as a function of the graph, which knows the ids.
Make = Callable[[SmallGraph], Query]


def _path(anchor: str, *relations: tuple[str, int], classes: tuple[str, ...] = (),
          class_words: frozenset[int] = frozenset(), **fields: object) -> Make:
    def make(g: SmallGraph) -> Query:
        return PathQuery((g.id(anchor),), anchor, tuple(g.relation(k, i) for k, i in relations),
                         tuple(g.id(c) for c in classes), class_words,
                         **fields)  # type: ignore[arg-type]
    return make


def _set(classes: tuple[str, ...] = (), anchors: tuple[str, ...] = (),
         relations: tuple[str, ...] = (), **fields: object) -> Make:
    def make(g: SmallGraph) -> Query:
        return SetQuery(tuple(g.id(c) for c in classes), None, tuple(g.id(a) for a in anchors),
                        tuple(g.relation(k, 9) for k in relations),
                        **fields)  # type: ignore[arg-type]
    return make


@pytest.mark.parametrize(("make", "kind", "values", "cited", "hops"), [
    # -- path queries ------------------------------------------------------------------
    (_path("Salt Orchard", ("author", 1), expects="entity"),
     "path", ["Mara Quell"], ["Salt Orchard — author — Mara Quell"], 1),
    (_path("Salt Orchard", ("author", 3), ("birthplace", 7), expects="entity"),
     "path", ["Lindhaven"],
     ["Salt Orchard — author — Mara Quell", "Mara Quell — birthplace — Lindhaven"], 2),
    # three hops, ending at the class the question names ("in which country")
    (_path("Glass Lighthouse", ("author", 5), ("birthplace", 9), ("country", 2),
           classes=("Country",), class_words=frozenset({2}), expects="entity"),
     "path", ["Veloria"], ["Glass Lighthouse — author — Mara Quell",
                           "Mara Quell — birthplace — Lindhaven", "Lindhaven — country — Veloria"],
     3),
    # walked backwards: "what does Brightwell Labs make"
    (_path("Brightwell Labs", ("maker", 4)), "path", ["Aurora Lamp", "Ember Toaster"],
     ["Aurora Lamp — maker — Brightwell Labs", "Ember Toaster — maker — Brightwell Labs"], 1),
    # no relation named: the one joining Mara Quell to books is found in the graph
    (_path("Mara Quell", classes=("Book",), class_words=frozenset({1})),
     "path", ["Salt Orchard", "Glass Lighthouse"],
     ["Salt Orchard — author — Mara Quell", "Glass Lighthouse — author — Mara Quell"], 1),
    (_path("Mara Quell", ("author", 4), count=True), "count", ["2"],
     ["Salt Orchard — author — Mara Quell", "Glass Lighthouse — author — Mara Quell"], 1),
    # a count of one number is the number ("how many people live in Lindhaven")
    (_path("Lindhaven", ("population", 2), count=True, expects="value"),
     "path", ["310000"], ["Lindhaven — population — 310000"], 1),
    (_path("Ostmark", ("ships_to", 2), yes_no=True), "path", ["yes"],
     ["Nimbus Home — ships to — Ostmark"], 1),
    (_path("Aurora Lamp", ("in_stock", 5), yes_no=True), "path", ["true"],
     ["Aurora Lamp — in stock — true"], 1),
    # -- describe -----------------------------------------------------------------------
    (lambda g: Describe((g.id("Candela Bulb"),), "Candela Bulb"), "describe", [],
     ["Candela Bulb — type — Product", "Candela Bulb — price — 5.00 EUR"], 0),
    # -- set queries --------------------------------------------------------------------
    (_set(("Product",), relations=("price",), comparisons=(("<", 30.0),)),
     "set", ["Aurora Lamp", "Candela Bulb"], ["Aurora Lamp — price — 20.00 EUR"], 0),
    (_set(("Product",), relations=("price",), comparisons=((">=", 10.0), ("<=", 40.0))),
     "set", ["Aurora Lamp", "Ember Toaster"], ["Ember Toaster — price — 35.00 EUR"], 0),
    (_set(("Product",), relations=("price",), order="asc"), "superlative", ["Candela Bulb"],
     ["Candela Bulb — price — 5.00 EUR"], 0),
    (_set(("Product",), relations=("weight",), order="desc"), "superlative", ["Ember Toaster"],
     ["Ember Toaster — weight — 2.5 kg"], 0),
    # no number named: books have only one (the publication year)
    (_set(("Book",), order="asc"), "superlative", ["Quiet Engine"],
     ["Quiet Engine — publication year — 1999"], 0),
    (_set(("Product",), count=True), "count", ["3"], ["Candela Bulb — type — Product"], 0),
    (_set(("Book",), ("Mara Quell",), count=True), "count", ["2"],
     ["Salt Orchard — author — Mara Quell"], 0),
    # joined by the named relation; a relation that joins nothing is dropped, not obeyed
    (_set(("Product",), ("Brightwell Labs",), ("maker",)), "set",
     ["Aurora Lamp", "Ember Toaster"], ["Aurora Lamp — maker — Brightwell Labs"], 0),
    (_set(("Product",), ("Brightwell Labs",), ("ceo",)), "set",
     ["Aurora Lamp", "Ember Toaster"], ["Ember Toaster — maker — Brightwell Labs"], 0),
    # a constraint without a class: anything with that number
    (_set(relations=("published",), comparisons=((">", 2005.0),)), "set",
     ["Glass Lighthouse"], ["Glass Lighthouse — publication year — 2010"], 0),
])
def test_a_query_is_answered_with_the_triples_it_rests_on(
    g: SmallGraph, make: Make, kind: str, values: list[str], cited: list[str], hops: int
) -> None:
    answer = execute(g.graph, make(g), "u")
    assert (answer.status, answer.kind, answer.hops) == ("answered", kind, hops)
    assert answer.values == values
    assert set(cited) <= {t.text for t in answer.triples}


@pytest.mark.parametrize(("make", "text"), [
    # the graph holds no capital of Ostmark
    # ... and says what it does hold about Ostmark instead (nothing is invented)
    (_path("Ostmark", ("capital", 3)), 'I don\'t know: my knowledge base has no "capital" for '
                                       "Ostmark. What it holds about Ostmark: Nimbus Home ships "
                                       "to it."),
    # a named relation (chief executive) the path cannot use: it only partly answers
    (_path("Salt Orchard", ("ceo", 3), ("author", 6)),
     'I don\'t know: my knowledge base has no "chief executive" for Salt Orchard. What it '
     "holds about Salt Orchard: author; publication year."),
    # "Can I return an opened lamp?": a fact about the relation alone does not confirm it
    (_path("Ostmark", ("ships_to", 2), yes_no=True, residual=("opened",)),
     'I don\'t know: my knowledge base has no "opened" for Ostmark.'),
    # a class with nothing joining it to the individual, and unexplained words
    (_path("Ostmark", classes=("Book",), residual=("novels",)),
     'I don\'t know: my knowledge base has no "novels" for Ostmark. What it holds about '
     "Ostmark: Nimbus Home ships to it."),
    # two numbers on products and neither named: which one is "top"?
    (_set(("Product",), order="desc"), 'I don\'t know: my knowledge base has nothing on "that".'),
    (_set(("Product",), relations=("price",), comparisons=(("<", 1.0),),
          residual=("vegan",)), 'I don\'t know: my knowledge base has nothing on "vegan".'),
    (lambda g: Decline(("phone",), "Mara Quell", (g.id("Mara Quell"),)),
     'I don\'t know: my knowledge base has no "phone" for Mara Quell. What it holds about '
     "Mara Quell: author of Salt Orchard and 1 more; birthplace."),
    (lambda g: UnknownEntity("Zephyr Blender"),
     "I don't know anything about Zephyr Blender: it is not in my knowledge base."),
])
def test_what_the_graph_cannot_answer_is_declined(g: SmallGraph, make: Make, text: str) -> None:
    answer = execute(g.graph, make(g), "u")
    assert (answer.status, answer.text, answer.values) == ("unknown", text, [])


def test_an_empty_set_is_an_answer_and_unrelated_is_not(g: SmallGraph) -> None:
    none = execute(g.graph, _set(("Product",), relations=("price",),
                                 comparisons=(("<", 1.0),))(g), "u")
    assert (none.status, none.values, none.text) == (
        "answered", [], "None: nothing in my knowledge base matches.")
    assert execute(g.graph, Unrelated(), "u") == Answer("unrelated", "")


def test_a_sole_subject_query_must_be_resolved_first(g: SmallGraph) -> None:
    with pytest.raises(AssertionError, match="SoleSubject"):
        execute(g.graph, SoleSubject(1, Unrelated()), "u")


def test_max_hops_bounds_the_walk(g: SmallGraph) -> None:
    query = _path("Glass Lighthouse", ("author", 5), ("birthplace", 9), ("country", 2),
                  classes=("Country",), class_words=frozenset({2}))(g)
    assert execute(g.graph, query, "u", max_hops=3).values == ["Veloria"]
    # two hops reach the birthplace; the country is a third
    assert execute(g.graph, query, "u", max_hops=2).values == ["Lindhaven"]


# -- choosing among walked paths ------------------------------------------------------

A = RelationMention(1, "a", "alpha", 1.0, True, frozenset({1}))
B = RelationMention(2, "b", "beta", 1.0, True, frozenset({5}))
A_AGAIN = RelationMention(3, "a2", "alpha again", 1.0, True, frozenset({1}))
WEAK = RelationMention(4, "w", "weak", 0.6, False, frozenset())  # by meaning, barely
NEAR = RelationMention(5, "n", "near", 0.7, False, frozenset())  # by meaning, closer
COUNTRY = RelationMention(6, "country", "country", 1.0, True, frozenset({8}))
BRIDGE = RelationMention(7, "7", "", BRIDGE_SCORE, False, frozenset({8}))  # see _candidates


def _p(end: int, *hops: tuple[int, bool], literal: bool = False) -> Path:
    return Path(end, tuple(Hop(100 + i, rid, inverse) for i, (rid, inverse) in enumerate(hops)),
                literal)


@pytest.mark.parametrize(("paths", "mentions", "context", "expected"), [
    # both named relations used beats one of them (which leaves "beta" uncovered)
    ([_p(10, (1, False)), _p(11, (1, False), (2, False))], [A, B], {},
     (((1, False), (2, False)), [])),
    # forwards beats backwards when both exist
    ([_p(10, (1, True)), _p(11, (1, False))], [A], {}, (((1, False),), [])),
    # a barely matched relation does not earn its hop
    ([_p(10, (1, False)), _p(11, (1, False), (4, False))], [A, WEAK], {}, (((1, False),), [])),
    # "when …" wants a value: worth a weak-ish extra hop
    ([_p(10, (1, False)), _p(11, (1, False), (5, False), literal=True)], [A, NEAR],
     {"expects": "value"}, (((1, False), (5, False)), [])),
    # "who …" wants an entity: the value at the end of the longer path loses
    ([_p(10, (1, False)), _p(11, (1, False), (5, False), literal=True)], [A, NEAR],
     {"expects": "entity"}, (((1, False),), [])),
    # two hops for the same words explain nothing twice
    ([_p(10, (1, False)), _p(11, (1, False), (3, False))], [A, A_AGAIN], {},
     (((1, False),), [])),
    # a path to the named class wins ("which country …")
    ([_p(10, (1, False)), _p(11, (1, False), (4, False))], [A, WEAK],
     {"typed_ends": {11}}, (((1, False), (4, False)), [])),
    # a relation named only by the class word ("country") need not be walked
    ([_p(10, (1, False))], [A, COUNTRY], {"class_words": frozenset({8})}, (((1, False),), [])),
    # a named relation must be used, even if the answer then has the other kind
    ([_p(10, (1, False), literal=True), _p(11, (1, False), (2, False))], [A, B],
     {"expects": "value"}, (((1, False), (2, False)), [])),
    # what joins the individual to the named class beats a weak guess by meaning
    ([_p(10, (4, False)), _p(11, (7, False))], [WEAK, BRIDGE], {"class_words": frozenset({8})},
     (((7, False),), [])),
    # the graph only partly answers: the named relation it leaves out is reported
    ([_p(10, (1, False))], [A, B], {}, (((1, False),), ["beta"])),
    ([], [A], {}, None),
])
def test_best_signature(paths: list[Path], mentions: list[RelationMention],
                        context: dict[str, object], expected: object) -> None:
    candidates = {m.relation_id: m for m in mentions}
    assert best_signature(paths, candidates, **context) == expected  # type: ignore[arg-type]


# -- the stages composed ---------------------------------------------------------------


@pytest.mark.parametrize(("question", "status", "values"), [
    ("Who wrote Salt Orchard?", "answered", ["Mara Quell"]),
    ("What is the capital of the country where Mara Quell was born?", "answered",
     ["Port Alder"]),
    ("Which books are by Mara Quell?", "answered", ["Salt Orchard", "Glass Lighthouse"]),
    ("Which products cost less than 30 euros?", "answered", ["Aurora Lamp", "Candela Bulb"]),
    ("Do you ship to Ostmark?", "answered", ["yes"]),
    # the one entity with opening hours is what the question is about
    ("What are your opening hours?", "answered", ["9:00 to 17:00, Monday to Friday"]),
    ("What is the phone number of Mara Quell?", "unknown", []),
    ("What is the price of the Zephyr Blender?", "unknown", []),
    # Ostmark is only mentioned (a country the store ships to): the model answers
    ("What is the capital of Ostmark?", "unrelated", []),
    ("Write a haiku about autumn.", "unrelated", []),
])
def test_the_reasoner_composes_the_stages(g: SmallGraph, question: str, status: str,
                                          values: list[str]) -> None:
    answer = g.reasoner.answer(question, user="u")
    assert (answer.status, answer.values) == (status, values)
    assert answer.analysis is not None


def test_the_trace_names_the_subject_a_question_was_taken_to_be_about(g: SmallGraph) -> None:
    answer = g.reasoner.answer("What are your opening hours?", user="u")
    assert answer.text == "The opening hours of Nimbus Home is 9:00 to 17:00, Monday to Friday."
    assert answer.analysis is not None
    assert [(x.name, x.method) for x in answer.analysis.anchors] == [("Nimbus Home", "relation")]
    assert answer.to_dict()["analysis"]["anchors"][0]["method"] == "relation"  # type: ignore[index]


def test_a_users_own_fact_answers_only_that_user(g: SmallGraph) -> None:
    g.graph.add_fact("Nimbus Home", "nickname", "the Nest", user="ann")
    ann = g.reasoner.answer("What is the nickname of Nimbus Home?", user="ann")
    bob = g.reasoner.answer("What is the nickname of Nimbus Home?", user="bob")
    assert ann.status == "answered" and ann.values == ["the Nest"]
    assert bob.status == "unknown" and "the Nest" not in bob.text
