"""Sentences for graph answers: fixed templates, because a 135M model garbles facts it
is asked to restate (``dialoop eval kg`` measures both; see docs/knowledge.md)."""

from __future__ import annotations

from collections.abc import Sequence

from dialoop.knowledge.graph import TYPE, Node, TripleView
from dialoop.knowledge.traversal import Hop

__all__ = ["DECLINE_MARK", "confirm", "count", "describe", "members", "path", "superlative",
           "unknown", "unknown_entity"]

DECLINE_MARK = "I don't know"
_NOT_IN = "it is not in my knowledge base."


def _value(node: Node) -> str:
    if node.datatype == "boolean":
        return "yes" if node.label == "true" else "no"
    return node.label


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def path(signature: Sequence[tuple[int, bool]], chosen: Sequence[tuple[int, Sequence[Hop]]],
         triples: dict[int, TripleView], ends: dict[int, Node]) -> str:
    """The answer of a path query: a sentence for one forward hop, else values + the chain."""
    values = list(dict.fromkeys(_value(ends[e]) for e, _ in chosen))
    first = triples[chosen[0][1][0].triple_id]
    if len(signature) == 1 and not signature[0][1] and ends[chosen[0][0]].datatype == "boolean":
        return f"{first.subject.label}: {first.relation} — {_join(values)}."
    if len(signature) == 1 and not signature[0][1]:
        verb = "is" if len(values) == 1 else "are"
        return f"The {first.relation} of {first.subject.label} {verb} {_join(values)}."
    if len(signature) == 1:
        return f"{_join(values)} ({first.relation}: {first.object.label})."
    chains = []
    for _, hops in chosen[:3]:
        chains.append("; ".join(triples[h.triple_id].text for h in hops))
    more = f"; and {len(chosen) - 3} more" if len(chosen) > 3 else ""
    return f"{_join(values)} ({' | '.join(chains)}{more})."


def describe(label: str, triples: Sequence[TripleView], node_id: int) -> str:
    parts = []
    for t in triples:
        if t.subject.id == node_id:
            parts.append(f"a {t.object.label}" if t.relation_key == TYPE
                         else f"{t.relation} {_value(t.object)}")
        else:
            parts.append(f"{t.subject.label} is a {label}" if t.relation_key == TYPE
                         else f"{t.relation} of {t.subject.label}")
    return f"{label}: " + "; ".join(parts) + "."


def count(n: int, labels: Sequence[str]) -> str:
    if n == 0:
        return "0: there are none."
    listed = f": {_join(labels)}" if labels and n <= 10 else ""
    return f"{n}{listed}."


def superlative(label: str, relation: str | None, value: str | None) -> str:
    return f"{label} ({relation} {value})." if relation and value else f"{label}."


def members(class_name: str | None, labels: Sequence[str], total: int,
            values: dict[str, str | None]) -> str:
    if not labels:
        return "None: nothing in my knowledge base matches."
    shown = [f"{x} ({values[x]})" if values.get(x) else x for x in labels]
    more = f" and {total - len(labels)} more" if total > len(labels) else ""
    return f"{_join(shown)}{more}."


def unknown(words: Sequence[str], about: str | None) -> str:
    what = " ".join(dict.fromkeys(words))
    if about and what:
        return f'{DECLINE_MARK}: my knowledge base has no "{what}" for {about}.'
    if about:
        return f"{DECLINE_MARK}: my knowledge base has nothing on that about {about}."
    if what:
        return f'{DECLINE_MARK}: my knowledge base has nothing on "{what}".'
    return f"{DECLINE_MARK}: {_NOT_IN}"


def unknown_entity(name: str) -> str:
    return f"{DECLINE_MARK} anything about {name}: {_NOT_IN}"


def confirm(triples: Sequence[TripleView]) -> str:
    """A yes/no question the graph confirms ("Do you ship to Austria?")."""
    return "Yes: " + "; ".join(t.text for t in triples[:3]) + "."
