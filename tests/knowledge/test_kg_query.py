"""Stage 2: the typed query an analysis asks (knowledge/query.py), by table.

:func:`plan` reads no graph, so these analyses are written by hand: node and relation
ids are made up (1 Salt Orchard, 5 Mara Quell, 15 Aurora Lamp; class 2 Book, 16
Product; relation 1 author, 3 birthplace, 7 price, 11 opening hours, 20 type).
"""

from __future__ import annotations

import pytest

from dialoop.knowledge.analysis import Analysis
from dialoop.knowledge.linking import Link, RelationMention
from dialoop.knowledge.query import (
    Decline,
    Describe,
    PathQuery,
    Query,
    SetQuery,
    SoleSubject,
    UnknownEntity,
    Unrelated,
    plan,
)
from dialoop.knowledge.words import tokenize

AUTHOR = RelationMention(1, "author", "author", 1.0, True, frozenset({1}))
BIRTHPLACE = RelationMention(3, "birthplace", "birthplace", 1.0, True, frozenset({7}))
PRICE = RelationMention(7, "price", "price", 1.0, True, frozenset({2}))
HOURS = RelationMention(11, "opening_hours", "opening hours", 1.0, True, frozenset({3, 4}))
SPOUSE_BY_MEANING = RelationMention(9, "spouse", "spouse", 0.62, False, frozenset())
PARTLY_NAMED = RelationMention(2, "published", "publication year", 0.3, False, frozenset({4}))
TYPE_BY_MEANING = RelationMention(20, "type", "type", 0.7, False, frozenset())
TYPE_NAMED = RelationMention(20, "type", "type", 1.0, True, frozenset({3}))


def _analysis(text: str, /, *, anchors: tuple[tuple[int, str], ...] = (),
              classes: tuple[tuple[int, str], ...] = (),
              relations: tuple[RelationMention, ...] = (), **fields: object) -> Analysis:
    """An analysis of ``text`` whose links span the words they name."""
    tokens = tokenize(text)
    words = [t.text for t in tokens]

    def link(node_id: int, name: str) -> Link:
        n = len(name.split())
        start = next(i for i in range(len(words)) if words[i:i + n] == name.split())
        return Link(node_id, name, name, start, start + n, "exact", 1.0)

    return Analysis(tokens, [link(*x) for x in anchors], [link(*x) for x in classes],
                    list(relations), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("a", "expected"), [
    # -- about one individual: a path query, or describe it, or decline ----------------
    (_analysis("Who wrote Salt Orchard?", anchors=((1, "Salt Orchard"),),
               relations=(AUTHOR,), expects="entity", question=True),
     PathQuery((1,), "Salt Orchard", (AUTHOR,), expects="entity")),
    (_analysis("Where was the author of Salt Orchard born?", anchors=((1, "Salt Orchard"),),
               relations=(AUTHOR, BIRTHPLACE), expects="entity", question=True),
     PathQuery((1,), "Salt Orchard", (AUTHOR, BIRTHPLACE), expects="entity")),
    # a relation matched only by meaning is a hop if close enough; a partial match is not
    (_analysis("Whose wife is Mara Quell?", anchors=((5, "Mara Quell"),),
               relations=(SPOUSE_BY_MEANING, PARTLY_NAMED), question=True),
     PathQuery((5,), "Mara Quell", (SPOUSE_BY_MEANING,))),
    # "type" is a hop only when the question names it
    (_analysis("Tell me about Aurora Lamp", anchors=((15, "Aurora Lamp"),),
               relations=(TYPE_BY_MEANING,), question=True),
     Describe((15,), "Aurora Lamp")),
    (_analysis("What type is Aurora Lamp?", anchors=((15, "Aurora Lamp"),),
               relations=(TYPE_NAMED,), question=True),
     PathQuery((15,), "Aurora Lamp", (TYPE_NAMED,))),
    (_analysis("Aurora Lamp", anchors=((15, "Aurora Lamp"),)), Describe((15,), "Aurora Lamp")),
    # words nothing explains, and no relation: the graph lacks what is asked
    (_analysis("What is the phone number of Mara Quell?", anchors=((5, "Mara Quell"),),
               residual=["phone"], question=True),
     Decline(("phone",), "Mara Quell", (5,))),
    # "the <unexplained> of X" declines even when some relation matched
    (_analysis("What is the nickname of the author of Salt Orchard?",
               anchors=((1, "Salt Orchard"),), relations=(AUTHOR,), residual=["nickname"],
               asks_unknown=True, question=True),
     Decline(("nickname",), "Salt Orchard", (1,))),
    # a class and no relation: whatever joins the individual to the class may answer
    (_analysis("Which books are by Mara Quell?", anchors=((5, "Mara Quell"),),
               classes=((2, "books"),), expects="entity", question=True),
     PathQuery((5,), "Mara Quell", (), classes=(2,), class_words=frozenset({1}),
               expects="entity", asked_classes=(2,))),
    (_analysis("How many people live in Lindhaven?", anchors=((9, "Lindhaven"),),
               relations=(PRICE,), count=True, expects="value", question=True),
     PathQuery((9,), "Lindhaven", (PRICE,), expects="value", count=True)),
    (_analysis("Is Salt Orchard by Mara Quell?", anchors=((1, "Salt Orchard"), (5, "Mara Quell")),
               relations=(AUTHOR,), yes_no=True, question=True),
     PathQuery((1, 5), "Salt Orchard", (AUTHOR,), yes_no=True)),
    # -- about a class, or with a constraint: a set query -------------------------------
    (_analysis("Which products cost less than 30 euros?", classes=((16, "products"),),
               relations=(PRICE, PARTLY_NAMED), comparisons=[("<", 30.0)], residual=["euros"],
               question=True),
     SetQuery((16,), "products", (), (PRICE,), (("<", 30.0),), residual=("euros",))),
    (_analysis("What is the cheapest product?", classes=((16, "product"),), relations=(PRICE,),
               order="asc", question=True),
     SetQuery((16,), "product", (), (PRICE,), order="asc")),
    # a count over a class is a set query even when it names an individual
    (_analysis("How many books did Mara Quell write?", anchors=((5, "Mara Quell"),),
               classes=((2, "books"),), count=True, question=True),
     SetQuery((2,), "books", (5,), count=True)),
    (_analysis("List the products", classes=((16, "products"),), question=True),
     SetQuery((16,), "products")),
    # a constraint without a class: anything with that number
    (_analysis("What costs less than 10 euros?", relations=(PRICE,),
               comparisons=[("<", 10.0)], question=True),
     SetQuery(relations=(PRICE,), comparisons=(("<", 10.0),))),
    # -- naming nothing in the graph ----------------------------------------------------
    (_analysis("What is the price of the Zephyr Blender?", relations=(PRICE,),
               unknown_names=["Zephyr Blender"], question=True),
     UnknownEntity("Zephyr Blender")),
    (_analysis("What are your opening hours?", relations=(HOURS,), question=True),
     SoleSubject(11, Unrelated())),
    (_analysis("products", classes=((16, "products"),)), Unrelated()),  # not a question
    (_analysis("Hello! How are you today?", relations=(PARTLY_NAMED,), question=True),
     Unrelated()),
])
def test_plan(a: Analysis, expected: Query) -> None:
    assert plan(a) == expected


def test_an_unknown_name_is_declined_before_anything_else() -> None:
    """Even with a known individual and a constraint ("cheaper than the Zephyr Blender")."""
    a = _analysis("Is Aurora Lamp cheaper than the Zephyr Blender?",
                  anchors=((15, "Aurora Lamp"),), relations=(PRICE,),
                  unknown_names=["Zephyr Blender"], comparisons=[("<", 1.0)], question=True)
    assert plan(a) == UnknownEntity("Zephyr Blender")
    statement = _analysis("Aurora Lamp and the Zephyr Blender", anchors=((15, "Aurora Lamp"),),
                          unknown_names=["Zephyr Blender"])
    assert plan(statement) == Describe((15,), "Aurora Lamp")  # not asked: no decline


@pytest.mark.parametrize(("query", "kind"), [
    (SetQuery((16,)), "set"),
    (SetQuery((16,), order="desc"), "superlative"),
    (SetQuery((16,), count=True), "count"),
    (SetQuery((16,), order="asc", count=True), "count"),  # "how many …": counted, not ranked
])
def test_a_set_query_says_the_kind_of_its_answer(query: SetQuery, kind: str) -> None:
    assert query.kind == kind
