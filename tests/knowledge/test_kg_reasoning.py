"""Linking, relation detection, traversal, constraints and declines on the KG QA graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialoop.eval.kg import Question, is_correct
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.linking import select_links
from dialoop.knowledge.lookup import parse_fact
from dialoop.knowledge.traversal import walk
from dialoop.knowledge.words import tokenize

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.slow  # the first question loads the embedding model


def _links(kb: KnowledgeBase, question: str) -> list[tuple[str, str, float]]:
    return [(x.name, x.method, round(x.score, 2))
            for x in select_links(kb.linker.link(question, "u"))]


def test_linking_exact_alias_and_stemmed(kgqa: KnowledgeBase) -> None:
    assert ("Mara Quell", "exact", 1.0) in _links(kgqa, "Who is Mara Quell?")
    assert ("Country", "exact", 1.0) in _links(kgqa, "How many countries are there?")


def test_linking_fuzzy_finds_a_misspelled_name(kgqa: KnowledgeBase) -> None:
    links = _links(kgqa, "Where was Mara Quel born?")
    assert links and links[0][0] == "Mara Quell" and links[0][1] == "fuzzy"
    assert 0.8 < links[0][2] < 0.9


def test_linking_by_embedding_when_words_differ(kb: KnowledgeBase) -> None:
    kb.add_fact("Glowing desk lamp", "price", "20 EUR", user="u")
    links = kb.linker.link("How much is the glowing table lamp?", "u")
    assert links and links[0].name == "Glowing desk lamp"
    assert links[0].method in ("fuzzy", "embedding")


def test_alias_links_with_a_lower_score(kb: KnowledgeBase) -> None:
    kb.add_fact("Aurora Lamp", "alias", "Aurora", user="u")
    kb.add_fact("Aurora Lamp", "price", "20 EUR", user="u")
    link = select_links(kb.linker.link("How much is Aurora?", "u"))[0]
    assert (link.name, link.method, link.score) == ("Aurora", "alias", 0.95)
    assert kb.graph.nodes([link.node_id])[link.node_id].label == "Aurora Lamp"
    assert kb.ask("What is the price of Aurora?", user="u").values == ["20.00 EUR"]


def test_relations_detected_from_labels_and_aliases(kgqa: KnowledgeBase) -> None:
    tokens = tokenize("Who wrote The Salt Orchard and where was she born?")
    found = {m.key for m in kgqa.matcher.match(tokens, set(range(len(tokens)))) if m.lexical}
    assert {"author", "birthplace", "birth_year"} <= found


def test_recursive_walk_goes_both_ways_up_to_three_hops(kgqa: KnowledgeBase) -> None:
    g = kgqa.graph
    start = select_links(kgqa.linker.link("Ember Toaster", "u"))[0].node_id
    rels = [g.relation_id(k) for k in ("maker", "headquarters", "mayor")]
    paths = walk(g, [start], rels, "u", max_hops=3)
    ends = {g.nodes([p.end])[p.end].label: len(p.hops) for p in paths}
    assert ends["Brightwell Labs"] == 1 and ends["Port Alder"] == 2 and ends["Ilsa Varn"] == 3
    assert max(len(p.hops) for p in walk(g, [start], rels, "u", max_hops=2)) == 2
    maker = select_links(kgqa.linker.link("Brightwell Labs", "u"))[0].node_id
    products = walk(g, [maker], rels[:1], "u", max_hops=1)  # object -> subject
    assert len(products) == 4 and all(p.hops[0].inverse for p in products)


@pytest.mark.parametrize(("question", "kind", "expected"), [
    ("Who wrote The Salt Orchard?", "path", ["Mara Quell"]),
    ("Where was the author of The Salt Orchard born?", "path", ["Lindhaven"]),
    ("In which country was the author of The Glass Lighthouse born?", "path", ["Veloria"]),
    ("Which products cost less than 10 euros?", "set", ["Glowworm Nightlight", "Candela Bulb"]),
    ("How many books did Mara Quell write?", "count", ["3"]),
    ("What is the cheapest product?", "superlative", ["Candela Bulb"]),
    ("Which products cost between 30 and 60 euros?", "set", ["Nimbus Kettle", "Ember Toaster"]),
])
def test_answers_with_the_triples_they_rest_on(kgqa: KnowledgeBase, question: str, kind: str,
                                               expected: list[str]) -> None:
    answer = kgqa.ask(question, user="u")
    assert (answer.status, answer.kind) == ("answered", kind)
    assert sorted(answer.values) == sorted(expected)
    cited = " ".join(t.text for t in answer.triples)
    assert all(v in cited for v in expected if not v.isdigit())


def test_multi_hop_answer_cites_every_hop(kgqa: KnowledgeBase) -> None:
    answer = kgqa.ask("Who is the CEO of the company that makes the Nimbus Kettle?", user="u")
    assert answer.values == ["Caspar Ode"] and answer.hops == 2
    assert [t.text for t in answer.triples] == [
        "Nimbus Kettle — maker — Brightwell Labs", "Brightwell Labs — chief executive — Caspar Ode"]


@pytest.mark.parametrize("question", [
    "What is the phone number of Mara Quell?",  # known entity, unknown relation
    "Who is the mayor of Ostmark?",  # known relation, not for this entity
    "What is the price of the Zephyr Blender?",  # unknown entity, known relation
    "Where was the spouse of Rhea Tolliver born?",  # the first hop is missing
])
def test_declines_what_the_graph_does_not_hold(kgqa: KnowledgeBase, question: str) -> None:
    answer = kgqa.ask(question, user="u")
    assert answer.status == "unknown"
    assert answer.text.startswith("I don't know")


def test_questions_about_something_else_are_left_to_the_model(kgqa: KnowledgeBase) -> None:
    for question in ("Hello! How are you today?", "Write a haiku about autumn."):
        assert kgqa.ask(question, user="u").status == "unrelated"


def test_a_taught_fact_is_seen_only_by_its_user(kgqa: KnowledgeBase) -> None:
    kgqa.add_fact("Mara Quell", "favourite colour", "teal", user="ann")
    ann = kgqa.ask("What is the favourite colour of Mara Quell?", user="ann")
    bob = kgqa.ask("What is the favourite colour of Mara Quell?", user="bob")
    assert ann.status == "answered" and ann.values == ["teal"]
    assert ann.triples[0].scope == "user:ann" and ann.triples[0].source == "api"
    assert bob.status == "unknown" and "teal" not in bob.text
    assert kgqa.forget(scope=Scope.of("bob"), triple_ids=[ann.triples[0].id]) == 0  # not bob's to delete
    assert kgqa.forget(scope=Scope.of("ann"), triple_ids=[ann.triples[0].id]) == 1
    assert kgqa.ask("What is the favourite colour of Mara Quell?", user="ann").status == "unknown"


def test_a_fact_from_a_lesson_is_forgotten_with_it(kgqa: KnowledgeBase) -> None:
    t = kgqa.add_fact("Ninefold", "sequel", "The Quiet Engine", user="ann", lesson_id=42)
    assert t is not None and t.lesson_id == 42
    assert kgqa.ask("What is the sequel of Ninefold?", user="ann").values == ["The Quiet Engine"]
    assert kgqa.forget(scope=Scope.of("ann"), lesson_id=42) == 1
    assert kgqa.ask("What is the sequel of Ninefold?", user="ann").status == "unknown"


def test_the_whole_kgqa_set_meets_its_targets(kgqa: KnowledgeBase) -> None:
    """The graph alone (template answers): the accuracy `dialoop eval kg` reports."""
    lines = (EXAMPLES / "kgqa" / "questions.jsonl").read_text().splitlines()
    right: dict[str, list[bool]] = {}
    for raw in lines:
        obj = json.loads(raw)
        q = Question(obj["type"], obj["question"], tuple(obj["answers"]))
        right.setdefault(q.type, []).append(is_correct(q, kgqa.ask(q.question, user="u").text))
    accuracy = {t: sum(v) / len(v) for t, v in right.items()}
    assert len(lines) >= 100
    assert accuracy["1-hop"] >= 0.95 and accuracy["2-hop"] >= 0.85
    assert accuracy["unanswerable"] >= 0.9 and accuracy["constraint"] >= 0.85


@pytest.mark.parametrize(("text", "fact"), [
    ("Aurora Lamp | price | 18 EUR", ("Aurora Lamp", "price", "18 EUR")),
    ("The price of the Aurora Lamp is 18 EUR.", ("Aurora Lamp", "price", "18 EUR")),
    ("Mara Quell's favourite colour is teal", ("Mara Quell", "favourite colour", "teal")),
    ("Please be more polite and greet people first.", None),
])
def test_plain_fact_corrections_are_recognized(text: str, fact: tuple | None) -> None:
    assert parse_fact(text) == fact


def test_a_correction_becomes_a_scoped_triple(kgqa: KnowledgeBase) -> None:
    t = kgqa.learn_correction("The mayor of Quillon is Juno Harrow.", user="ann",
                              scope=Scope.of("ann"), lesson_id=7)
    assert t is not None and (t.scope, t.source, t.lesson_id) == ("user:ann", "lesson", 7)
    assert "Juno Harrow" in kgqa.ask("Who is the mayor of Quillon?", user="ann").values
    assert kgqa.ask("Who is the mayor of Quillon?", user="bob").values == ["Sela Brin"]
    kgqa.forget(scope=Scope.of("ann"), lesson_id=7)


def test_the_dialogue_managers_lookup_seam(kb: KnowledgeBase) -> None:
    """find / entities / aliases: what the dialogue manager's look_up action calls."""
    kb.import_file(EXAMPLES / "store_support" / "knowledge.jsonl", user="op")
    products = kb.aliases("product")
    assert products["Aurora Kettle"] == ["Aurora Kettle", "kettle", "aurora"]
    assert sorted(kb.entities("Products")) == sorted(products) and len(products) == 5
    evidence = kb.find("How much is the Aurora kettle?", user="u")
    assert evidence[0].kind == "triple" and "49.00 USD" in evidence[0].text


@pytest.mark.parametrize(("gold", "reply", "right"), [
    ("24", "The price of Halo Desk Lamp is 24.00 EUR. [triple:218]", True),
    ("24", "The price is 24,000 EUR.", False),
    ("24", "It came out in 2024.", False),
    ("24", "I don't know: my knowledge base has no price for it, maybe 24.", False),
    ("Tacoma", "Lindhaven (Dune — author — X; X — birthplace — Tacoma).", False),
    ("310000", "About 310,000 people live there.", True),
])
def test_exact_match_scoring(gold: str, reply: str, right: bool) -> None:
    assert is_correct(Question("1-hop", "?", (gold,)), reply) is right
