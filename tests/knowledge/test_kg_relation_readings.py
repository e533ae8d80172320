"""Relation readings a graph's own names do not spell out (issue 14):

- two relations the shared relation table names by the same words ("based in":
  ``headOffice`` and ``situatedIn``) are told apart by the types the graph's triples
  show at their ends, against the type of what the question is about;
- a relation named by a noun derived from a verb (``product``, of "produce") is asked
  about with the verb and its agent noun, and the table's words for them ("makes",
  "maker");
- "co-starred with X" walks the same relation there and back, without X.

The graphs are small and written here; nothing loads the embedding model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.config import load_settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.linking import TABLE_SCORE, RelationMention
from dialoop.knowledge.reasoning import Reasoner
from dialoop.knowledge.traversal import relation_end_types
from dialoop.knowledge.words import joint, root, tokenize, verb_forms, verb_roots
from dialoop.store import open_database
from tests.knowledge.film_graph import film_records, without_embedder

# Firms with a head office in a town, towns situated in a province; what the firms make.
FIRMS = [("Korvel Bikes", "Aldmoor", [("Korvel Trail", 900), ("Korvel Step", 450)]),
         ("Orrin Audio", "Pellack", [("Tidewave Speaker", 120)]),
         ("Skarn Foods", "Pellack", [("Skarn Oatcake", 3)])]
TOWNS = [("Aldmoor", "Westry"), ("Pellack", "Eastmarch"), ("Vinter", "Eastmarch")]
CAPITALS = [("Vinter", "Eastmarch"), ("Aldmoor", "Westry")]


def _kb(home: Path, records: list[dict[str, object]]) -> KnowledgeBase:
    settings = load_settings(home=home)
    kb = KnowledgeBase(open_database(settings.resolved_database_url), settings)
    path = home / "graph.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    kb.import_file(path, user="operator", scope=Scope.everyone())
    return without_embedder(kb)


def _firm_records(*, typed: bool = True) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def entity(name: str, kind: str) -> None:
        rows.append({"entity": name, "label": name, **({"type": kind} if typed else {})})

    for province in sorted({p for _, p in TOWNS}):
        entity(province, "Province")
    for town, province in TOWNS:
        entity(town, "Town")
        rows.append({"subject": town, "relation": "situatedIn", "object": province})
    for town, province in CAPITALS:
        rows.append({"subject": town, "relation": "capitalOf", "object": province})
    for firm, town, items in FIRMS:
        entity(firm, "Firm")
        rows.append({"subject": firm, "relation": "headOffice", "object": town})
        for item, price in items:
            entity(item, "Item")
            rows += [{"subject": firm, "relation": "product", "object": item},
                     {"subject": item, "relation": "price", "value": price, "unit": "EUR"}]
    return rows


@pytest.fixture(scope="module")
def firms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    kb = _kb(tmp_path_factory.mktemp("firms"), _firm_records())
    yield kb
    kb.graph.db.close()


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reasoner]:
    movies = [("Glass Harbor", ["Mira Castell", "Jonah Reyes"], "Tomas Brandt", "Ilse Morgan",
               2011),
              ("Copper Sky", ["Elena Voss", "Jonah Reyes"], "Tomas Brandt", "Nadia Fenn", 2008),
              ("Salt Road", ["Elena Voss"], "Nadia Fenn", "Tomas Brandt", 2015),
              ("Lone Pier", ["Ada Quist"], "Nadia Fenn", "Ilse Morgan", 2019)]
    kb = _kb(tmp_path_factory.mktemp("films"), film_records(movies))
    yield kb.reasoner
    kb.graph.db.close()


def _ask(r: Reasoner, question: str) -> tuple[str, set[str]]:
    answer = r.answer(question, user="u")
    return answer.status, set(answer.values)


# -- 1. the anchor's type chooses between relations the same words name -----------------


def test_the_graph_shows_each_relations_domain_and_range_types(firms: KnowledgeBase) -> None:
    g = firms.graph
    ids = {key: g.relation_id(key) for key in ("headOffice", "situatedIn", "product")}
    classes = {name: g.entity_by_key(name).id for name in ("Firm", "Town", "Province", "Item")}
    ends = relation_end_types(g, list(ids.values()), list(classes.values()), "u")
    assert ends[ids["headOffice"]] == ({classes["Firm"]}, {classes["Town"]})
    assert ends[ids["situatedIn"]] == ({classes["Town"]}, {classes["Province"]})
    assert ends[ids["product"]] == ({classes["Firm"]}, {classes["Item"]})


def test_the_relation_whose_domain_is_the_anchors_type_wins_the_tie(
        firms: KnowledgeBase) -> None:
    r = firms.reasoner
    # "based" names both (the table calls both a location); a firm has a head office
    assert _ask(r, "In which town is Korvel Bikes based?") == ("answered", {"Aldmoor"})
    assert _ask(r, "Where is Orrin Audio based?") == ("answered", {"Pellack"})
    # a town is situated in a province: the same words, the other relation
    assert _ask(r, "Where is Vinter based?") == ("answered", {"Eastmarch"})
    # the dropped relation is still the unnamed hop into the class asked for
    assert _ask(r, "Which province is Korvel Bikes based in?") == ("answered", {"Westry"})
    assert _ask(r, "What is the capital of the province Orrin Audio is based in?") == \
        ("answered", {"Vinter"})


def test_read_inversely_the_range_type_fits_and_a_named_class_breaks_what_is_left(
        firms: KnowledgeBase) -> None:
    r = firms.reasoner
    # Pellack is a town: the range of headOffice, the domain of situatedIn; "firms"
    # (a class the question names) is at headOffice's other end only
    assert _ask(r, "Which firms are based in Pellack?") == \
        ("answered", {"Orrin Audio", "Skarn Foods"})
    assert _ask(r, "Which items are made by firms based in Aldmoor?") == \
        ("answered", {"Korvel Trail", "Korvel Step"})


def test_the_tie_rule_reads_types_only_and_leaves_the_graphs_own_words_alone(
        firms: KnowledgeBase, tmp_path: Path) -> None:
    g, matcher = firms.graph, firms.matcher
    office, situated = g.relation_id("headOffice"), g.relation_id("situatedIn")
    korvel, firm = g.entity_by_key("Korvel Bikes").id, g.entity_by_key("Firm").id
    town, item = g.entity_by_key("Pellack").id, g.entity_by_key("Korvel Trail").id
    province = g.entity_by_key("Province").id
    tie = [RelationMention(situated, "situatedIn", "situatedIn", TABLE_SCORE, False,
                           frozenset({4})),
           RelationMention(office, "headOffice", "headOffice", TABLE_SCORE, False,
                           frozenset({4}))]
    assert [m.key for m in matcher.prefer_fitting(tie, [korvel], [], "u")] == ["headOffice"]
    # a town fits both (the range of one, the domain of the other): a named class decides,
    # and without one the tie stays
    assert [m.key for m in matcher.prefer_fitting(tie, [town], [firm], "u")] == ["headOffice"]
    assert matcher.prefer_fitting(tie, [town], [], "u") == tie
    # an item fits neither: the words are about a later hop, the path settles it
    assert matcher.prefer_fitting(tie, [item], [province], "u") == tie
    assert matcher.prefer_fitting(tie, [], [firm], "u") == tie  # nothing named
    # the graph's own words, matched twice, are told apart later (by the path)
    own = [m.__class__(m.relation_id, m.key, m.label, 1.0, True, m.positions) for m in tie]
    assert matcher.prefer_fitting(own, [korvel], [], "u") == own
    # different words, or different scores: no tie
    apart = [tie[0], RelationMention(office, "headOffice", "headOffice", TABLE_SCORE, False,
                                     frozenset({5}))]
    assert matcher.prefer_fitting(apart, [korvel], [], "u") == apart
    # a graph without types keeps the tie: nothing to tell them apart by
    untyped = _kb(tmp_path, _firm_records(typed=False))
    try:
        found = untyped.reasoner.answer("Where is Korvel Bikes based?", user="u")
        ids = {untyped.graph.relation_id(k) for k in ("headOffice", "situatedIn")}
        mentions = [m for m in found.analysis.relations if m.relation_id in ids]
        assert len(mentions) == 2
    finally:
        untyped.graph.db.close()


# -- 2. a noun relation read as its verb and its agent noun -------------------------------


def test_a_noun_derived_from_a_verb_gives_that_verbs_root_and_forms() -> None:
    assert verb_roots("product") == {"product", root("produce")}
    assert root("producer") == root("produced") == root("produces") == "produc"
    assert root("compose") in verb_roots("composition")
    assert root("describe") in verb_roots("description")
    assert verb_roots("price") == {root("price")}  # not derived from a verb: only itself
    assert {"produced", "producer", "produces"} <= set(verb_forms("produc"))


@pytest.mark.parametrize(("question", "values"), [
    ("Who makes the Tidewave Speaker?", {"Orrin Audio"}),  # the table's word for "produce"
    ("Who is the maker of the Skarn Oatcake?", {"Skarn Foods"}),
    ("Which firm produces the Korvel Step?", {"Korvel Bikes"}),  # the verb itself
    ("Who is the producer of the Tidewave Speaker?", {"Orrin Audio"}),  # its agent noun
    ("What does Skarn Foods produce?", {"Skarn Oatcake"}),  # forward
    ("Where is the maker of the Tidewave Speaker based?", {"Pellack"}),
    ("In which province is the maker of the Korvel Trail based?", {"Westry"}),
])
def test_a_noun_relation_is_asked_with_its_verb_and_agent_noun(
        firms: KnowledgeBase, question: str, values: set[str]) -> None:
    assert _ask(firms.reasoner, question) == ("answered", values)


def test_the_verb_reading_claims_nothing_in_a_graph_without_such_a_relation(
        films: Reasoner) -> None:
    for question in ("Who makes Glass Harbor?", "Who produced Copper Sky?"):
        status, values = _ask(films, question)
        assert (status, values) == ("unknown", set()), question


# -- 3. "co-": the same relation there and back -------------------------------------------


def test_co_is_a_prefix_of_the_word() -> None:
    assert joint("co-starred") == ("starred", True)
    assert joint("costars") == ("stars", False)  # a candidate only, see below
    assert joint("cost") is None and joint("star") is None
    assert [t.text for t in tokenize("Who co-starred with X?")][1] == "co-starred"


@pytest.mark.parametrize(("question", "values"), [
    ("Who co-starred with Jonah Reyes?", {"Mira Castell", "Elena Voss"}),
    ("Which actors co-starred with Elena Voss?", {"Jonah Reyes"}),
    ("Who are Mira Castell's co-stars?", {"Jonah Reyes"}),
    ("Who costarred with Mira Castell?", {"Jonah Reyes"}),
    ("Who co-starred with Jonah Reyes in Copper Sky?", {"Elena Voss"}),
])
def test_co_starred_walks_the_relation_there_and_back_without_the_anchor(
        films: Reasoner, question: str, values: set[str]) -> None:
    answer = films.answer(question, user="u")
    assert (answer.status, set(answer.values)) == ("answered", values), answer.text
    assert answer.hops == 2


def test_without_with_the_co_word_is_the_relation_itself(films: Reasoner) -> None:
    assert _ask(films, "Which films did Elena Voss co-star in?") == \
        ("answered", {"Copper Sky", "Salt Road"})


def test_no_partner_is_no_answer_not_the_anchor_itself(films: Reasoner) -> None:
    answer = films.answer("Who co-starred with Ada Quist?", user="u")
    assert answer.status == "unknown" and "Ada Quist" not in answer.values


def test_co_works_whichever_way_the_relation_points(tmp_path: Path) -> None:
    rows = [{"subject": actor, "relation": "actedIn", "object": film}
            for film, actors in (("Dune Bell", ["Ona Pike", "Rui Vale"]),
                                 ("Moth Lane", ["Ona Pike", "Tess Orr"]))
            for actor in actors]
    kb = _kb(tmp_path, rows)
    try:
        assert _ask(kb.reasoner, "Who co-starred with Ona Pike?") == \
            ("answered", {"Rui Vale", "Tess Orr"})
    finally:
        kb.graph.db.close()


def test_a_word_that_only_starts_with_co_is_left_alone(films: Reasoner) -> None:
    # "costume" is no "co-" word: the graph has no "stume" (nor "costume")
    answer = films.answer("Who made the costumes of Glass Harbor?", user="u")
    assert answer.status == "unknown"
    assert not any(m.joint for m in answer.analysis.relations)
