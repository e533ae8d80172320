"""Graphs whose relations carry only their own names (``starred_actors``,
``headquarteredIn``): matched from the names' words, read in both directions, worded
from the names, and declined with what the graph holds when nothing matches.

Nothing here loads the embedding model: the matcher runs without an embedder, so
every match below comes from the names and their morphology alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.config import load_settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.linking import Linker, RelationMatcher
from dialoop.knowledge.phrasing import forward, inverse
from dialoop.knowledge.reasoning import Reasoner
from dialoop.knowledge.words import root, split_name
from dialoop.store import open_database
from tests.knowledge.film_graph import film_records, without_embedder

MOVIES = [("Glass Harbor", ["Mira Castell", "Jonah Reyes"], "Tomas Brandt", "Ilse Morgan", 2011),
          ("Copper Sky", ["Elena Voss", "Jonah Reyes"], "Tomas Brandt", "Nadia Fenn", 2008)]
PLACES = [("Brisk Harbor", "City", "locatedIn", "Norland"),
          ("Kestria", "City", "capitalOf", "Norland"), ("Kestria", "City", "locatedIn", "Norland")]


def _records() -> list[dict[str, object]]:
    rows = film_records(MOVIES)
    rows += [{"entity": "Norland", "label": "Norland", "type": "Country"},
             {"entity": "Halvorsen Optics", "label": "Halvorsen Optics", "type": "Company"},
             {"subject": "Halvorsen Optics", "relation": "headquarteredIn",
              "object": "Brisk Harbor"},
             # A name that is also a relation word: the policy called Warranty.
             {"subject": "Halvorsen Optics", "relation": "warranty", "value": "2 years"},
             {"entity": "Warranty", "label": "Warranty", "type": "Policy"},
             {"subject": "Warranty", "relation": "duration", "value": "2 years"}]
    for city, kind, relation, country in PLACES:
        rows += [{"entity": city, "label": city, "type": kind},
                 {"subject": city, "relation": relation, "object": country}]
    return rows


@pytest.fixture(scope="module")
def reasoner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reasoner]:
    home = tmp_path_factory.mktemp("bare-home")
    settings = load_settings(home=home)
    db = open_database(settings.resolved_database_url)
    kb = KnowledgeBase(db, settings)
    path = home / "graph.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records()) + "\n")
    kb.import_file(path, user="operator", scope=Scope.everyone())
    yield without_embedder(kb).reasoner
    db.close()


def test_names_split_and_words_meet_by_root() -> None:
    assert split_name("headquarteredIn") == "headquartered in"
    assert split_name("starred_actors") == "starred actors"
    assert split_name("HTTPStatus") == "HTTP status" and split_name("CEO") == "CEO"
    assert root("acted") == root("actors") == root("act")
    assert root("wrote") == root("writer") == root("written")
    assert root("headquarters") == root("headquartered")


@pytest.mark.parametrize(("question", "values"), [
    # forward, by a word of the name or a form of it
    ("Who starred in Glass Harbor?", {"Mira Castell", "Jonah Reyes"}),
    ("Who acted in Copper Sky?", {"Elena Voss", "Jonah Reyes"}),
    ("Who is the director of Copper Sky?", {"Tomas Brandt"}),
    ("Who was the writer of Glass Harbor?", {"Ilse Morgan"}),
    ("When was Copper Sky released?", {"2008"}),
    ("Where is Halvorsen Optics headquartered?", {"Brisk Harbor"}),
    ("What is the capital of Norland?", {"Kestria"}),
    # backwards: the film is the subject of starred_actors, the person asked about its object
    ("Which movies did Elena Voss act in?", {"Copper Sky"}),
    ("Which films did Tomas Brandt direct?", {"Glass Harbor", "Copper Sky"}),
    ("What did Nadia Fenn write?", {"Copper Sky"}),
])
def test_a_bare_relation_is_found_in_either_direction(reasoner: Reasoner, question: str,
                                                      values: set[str]) -> None:
    answer = reasoner.answer(question, user="u")
    assert answer.status == "answered", answer.text
    assert set(answer.values) == values
    assert answer.triples  # every answer rests on cited facts


def test_a_typed_hop_completes_the_path_to_the_class_asked_for(reasoner: Reasoner) -> None:
    # The graph goes company → city → country; only "headquartered" is named.
    answer = reasoner.answer("In which country is Halvorsen Optics headquartered?", user="u")
    assert (answer.status, answer.values, answer.hops) == ("answered", ["Norland"], 2)
    three = reasoner.answer("What is the capital of the country where Halvorsen Optics is "
                            "headquartered?", user="u")
    assert (three.status, three.values, three.hops) == ("answered", ["Kestria"], 3)


def test_an_unmatched_relation_is_declined_with_what_the_graph_holds(
        reasoner: Reasoner) -> None:
    for question in ("What is the budget of Glass Harbor?", "Where was Mira Castell born?"):
        answer = reasoner.answer(question, user="u")
        assert answer.status == "unknown" and answer.text.startswith("I don't know"), question
        assert not answer.values
    held = reasoner.answer("What is the budget of Glass Harbor?", user="u").text
    for words in ("starred actors", "directed by", "written by", "release year"):
        assert words in held  # the relations it does hold, read from their names
    actor = reasoner.answer("Where was Mira Castell born?", user="u").text
    assert "starred actors of Glass Harbor" in actor


def test_wording_reads_the_relation_names(reasoner: Reasoner) -> None:
    assert forward("Halvorsen Optics", "headquartered in", ["Brisk Harbor"]) == \
        "Halvorsen Optics is headquartered in Brisk Harbor."
    assert forward("Glass Harbor", "starred actors", ["A", "B"]) == \
        "The starred actors of Glass Harbor are A and B."
    assert forward("Acme", "product", ["A", "B"]) == "The products of Acme are A and B."
    assert forward("Nimbus Home", "ships to", ["Veloria"]) == "Nimbus Home ships to Veloria."
    assert inverse("directed by", "Tomas Brandt") == "(directed by Tomas Brandt)"
    text = reasoner.answer("Where is Halvorsen Optics headquartered?", user="u").text
    assert text == "Halvorsen Optics is headquartered in Brisk Harbor."
    films = reasoner.answer("Which films did Tomas Brandt direct?", user="u").text
    assert films == "Glass Harbor and Copper Sky (directed by Tomas Brandt)."


def test_the_example_graphs_relations_still_need_their_own_words(tmp_path: Path) -> None:
    # A relation with aliases of its own keeps the strict rule: half of "founding year"
    # ("year") does not name it.
    settings = load_settings(home=tmp_path)
    db = open_database(settings.resolved_database_url)
    kb = KnowledgeBase(db, settings)
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"relation": "founded", "label": "founding year", "aliases": ["established"]},
        {"subject": "Grauburg", "relation": "founded", "value": 1122}]) + "\n")
    kb.import_file(path, user="operator", scope=Scope.everyone())
    matcher = RelationMatcher(kb.graph)
    r = Reasoner(kb.graph, Linker(kb.graph), matcher)
    assert r.answer("When was Grauburg established?", user="u").values == ["1122"]
    assert r.answer("What year is it in Grauburg?", user="u").status != "answered"
    db.close()


def test_a_name_that_is_also_a_relation_word_asks_for_that_relation_of_the_other_name(
        reasoner: Reasoner) -> None:
    answer = reasoner.answer("What is the warranty of Halvorsen Optics?", user="u")
    assert (answer.status, answer.values) == ("answered", ["2 years"])
    alone = reasoner.answer("What is the Warranty?", user="u")  # the only name: the entity
    assert alone.status == "answered" and "Warranty" in alone.text
