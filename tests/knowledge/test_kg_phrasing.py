"""Stage 4: the sentences of graph answers (knowledge/phrasing.py), by table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from dialoop.knowledge import phrasing
from dialoop.knowledge.graph import Node, TripleView
from dialoop.knowledge.traversal import Hop

LAMP = Node(1, "entity", "lamp", "Aurora Lamp")
TOASTER = Node(2, "entity", "toaster", "Ember Toaster")
MAKER = Node(3, "entity", "bw", "Brightwell Labs")
CEO = Node(4, "entity", "sela", "Sela Brin")
PRODUCT = Node(5, "entity", "Product", "Product")
PRICE = Node(6, "literal", "p20", "20.00 EUR", "decimal", 20.0)
YES = Node(7, "literal", "t", "true", "boolean")
NO = Node(8, "literal", "f", "false", "boolean")


def _t(tid: int, s: Node, relation: str, o: Node) -> TripleView:
    key = relation.replace(" ", "_")
    return TripleView(tid, s, tid, key, relation, o, "global", "test", "op", None,
                      datetime(2025, 1, 1, tzinfo=UTC))


T = {t.id: t for t in [
    _t(11, LAMP, "maker", MAKER), _t(12, TOASTER, "maker", MAKER),
    _t(13, MAKER, "chief executive", CEO), _t(14, LAMP, "price", PRICE),
    _t(15, LAMP, "in stock", YES), _t(16, TOASTER, "in stock", NO),
    _t(17, LAMP, "type", PRODUCT),
]}
NODES = {n.id: n for n in (LAMP, TOASTER, MAKER, CEO, PRODUCT, PRICE, YES, NO)}


def _chosen(*chains: Sequence[tuple[int, bool]]) -> list[tuple[int, tuple[Hop, ...]]]:
    """(end, hops) per chain of (triple id, walked backwards)."""
    out = []
    for chain in chains:
        hops = tuple(Hop(tid, T[tid].relation_id, inv) for tid, inv in chain)
        last = T[chain[-1][0]]
        out.append(((last.subject if chain[-1][1] else last.object).id, hops))
    return out


@pytest.mark.parametrize(("chosen", "text"), [
    (_chosen([(14, False)]), "The price of Aurora Lamp is 20.00 EUR."),
    (_chosen([(11, False)]), "The maker of Aurora Lamp is Brightwell Labs."),
    (_chosen([(15, False)]), "Aurora Lamp: in stock — yes."),
    (_chosen([(16, False)]), "Ember Toaster: in stock — no."),
    # backwards: "what does Brightwell Labs make?"
    (_chosen([(11, True)], [(12, True)]), "Aurora Lamp and Ember Toaster (maker: Brightwell Labs)."),
    # two hops: the value, then the chain that leads to it
    (_chosen([(11, False), (13, False)]),
     "Sela Brin (Aurora Lamp — maker — Brightwell Labs; "
     "Brightwell Labs — chief executive — Sela Brin)."),
])
def test_a_path_answer(chosen: list[tuple[int, tuple[Hop, ...]]], text: str) -> None:
    sig = [(h.relation_id, h.inverse) for h in chosen[0][1]]
    assert phrasing.path(sig, chosen, T, NODES) == text


def test_a_path_answer_with_many_chains_shows_three() -> None:
    chosen = _chosen(*[[(11, False), (13, False)]] * 5)
    text = phrasing.path([(11, False), (13, False)], chosen, T, NODES)
    assert text.count("chief executive") == 3 and text.endswith("; and 2 more).")


@pytest.mark.parametrize(("text", "expected"), [
    (phrasing.describe("Aurora Lamp", [T[17], T[14], T[15]], LAMP.id),
     "Aurora Lamp: a Product; price 20.00 EUR; in stock yes."),
    (phrasing.describe("Brightwell Labs", [T[11], T[13]], MAKER.id),
     "Brightwell Labs: maker of Aurora Lamp; chief executive Sela Brin."),
    (phrasing.describe("Product", [T[17]], PRODUCT.id), "Product: Aurora Lamp is a Product."),
    (phrasing.count(0, []), "0: there are none."),
    (phrasing.count(2, ["Aurora Lamp", "Ember Toaster"]), "2: Aurora Lamp and Ember Toaster."),
    (phrasing.count(11, ["x"] * 11), "11."),  # too many to list
    (phrasing.superlative("Candela Bulb", "price", "5.00 EUR"), "Candela Bulb (price 5.00 EUR)."),
    (phrasing.superlative("Quiet Engine", None, None), "Quiet Engine."),
    (phrasing.members("products", [], 0, {}), "None: nothing in my knowledge base matches."),
    (phrasing.members("products", ["A", "B", "C"], 3, {"A": "5.00 EUR", "B": None}),
     "A (5.00 EUR), B and C."),
    (phrasing.members(None, ["A"], 51, {}), "A and 50 more."),
    (phrasing.confirm([T[11]]), "Yes: Aurora Lamp — maker — Brightwell Labs."),
    (phrasing.unknown(["phone", "phone"], "Mara Quell"),
     'I don\'t know: my knowledge base has no "phone" for Mara Quell.'),
    (phrasing.unknown([], "Mara Quell"),
     "I don't know: my knowledge base has nothing on that about Mara Quell."),
    (phrasing.unknown(["vegan"], None), 'I don\'t know: my knowledge base has nothing on "vegan".'),
    (phrasing.unknown([], None), "I don't know: it is not in my knowledge base."),
    (phrasing.unknown_entity("Zephyr Blender"),
     "I don't know anything about Zephyr Blender: it is not in my knowledge base."),
])
def test_wording(text: str, expected: str) -> None:
    assert text == expected


def test_every_decline_is_marked_as_one() -> None:
    """The caller (and `dialoop eval kg`) tell a decline by its mark."""
    for text in (phrasing.unknown(["x"], "y"), phrasing.unknown([], None),
                 phrasing.unknown_entity("Z")):
        assert text.startswith(phrasing.DECLINE_MARK)
