"""Sentences for graph answers: fixed templates, because a 135M model garbles facts it
is asked to restate (``dialoop eval kg`` measures both; see docs/knowledge.md)."""

from __future__ import annotations

from collections.abc import Sequence

from dialoop.knowledge.graph import TYPE, Node, TripleView
from dialoop.knowledge.traversal import Hop
from dialoop.knowledge.words import readable, split_name

__all__ = ["DECLINE_MARK", "confirm", "count", "describe", "forward", "holdings", "inverse",
           "members", "path", "relation_words", "superlative", "unknown", "unknown_entity"]

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


def relation_words(t: TripleView) -> str:
    """A relation as words: its label, split when it is written as one identifier
    ("headquarteredIn" → "headquartered in", "starred_actors" → "starred actors")."""
    return readable(t.relation)


def _linking(words: str) -> bool:
    """Whether the relation reads as a predicate: "headquartered in", "directed by",
    "capital of" (X is <words> Y), or "has genre" (X <words> Y)."""
    parts = words.split()
    return len(parts) > 1 and (parts[-1] in _PREPOSITIONS or parts[0] in ("has", "have", "is"))


_PREPOSITIONS = frozenset(["of", "in", "at", "on", "to", "for", "from", "with", "by", "into",
                           "under"])


def _plural(words: str) -> str:
    return words if words.endswith("s") else words + "s"


def forward(subject: str, words: str, values: Sequence[str]) -> str:
    """One forward hop as a sentence: "Halvorsen Optics is headquartered in Brisk Harbor.",
    "Night of the Tides has genre Thriller.", "The products of X are A and B."."""
    if _linking(words):
        first = words.split()[0]
        # "ships to", "works for", "has genre" are verbs already; "located in" needs "is"
        verb = "" if first in ("has", "have", "is") or (
            first.endswith("s") and not first.endswith("ss")) else "is "
        return f"{subject} {verb}{words} {_join(values)}."
    if len(values) == 1:
        return f"The {words} of {subject} is {values[0]}."
    return f"The {_plural(words)} of {subject} are {_join(values)}."


def inverse(words: str, obj: str) -> str:
    """One backward hop, read from the object: "(directed by Tomas Brandt)",
    "(capital of Norland)", "(starred actors: Dev Okafor)"."""
    return f"({words} {obj})" if _linking(words) else f"({words}: {obj})"


def path(signature: Sequence[tuple[int, bool]], chosen: Sequence[tuple[int, Sequence[Hop]]],
         triples: dict[int, TripleView], ends: dict[int, Node]) -> str:
    """The answer of a path query: a sentence for one forward hop, else values + the chain."""
    values = list(dict.fromkeys(_value(ends[e]) for e, _ in chosen))
    first = triples[chosen[0][1][0].triple_id]
    if len(signature) == 1 and not signature[0][1] and ends[chosen[0][0]].datatype == "boolean":
        return f"{first.subject.label}: {first.relation} — {_join(values)}."
    if len(signature) == 1 and not signature[0][1]:
        return forward(first.subject.label, relation_words(first), values)
    if len(signature) == 1:
        return f"{_join(values)} {inverse(relation_words(first), first.object.label)}."
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
                         else f"{relation_words(t)} {_value(t.object)}")
        else:
            parts.append(f"{t.subject.label} is a {label}" if t.relation_key == TYPE
                         else f"{relation_words(t)} of {t.subject.label}")
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


def unknown(words: Sequence[str], about: str | None, held: Sequence[str] = ()) -> str:
    """A decline; ``held``: what the graph does hold about ``about`` (see :func:`holdings`)."""
    what = " ".join(split_name(w) for w in dict.fromkeys(words))
    known = f" What it holds about {about}: {'; '.join(held)}." if about and held else ""
    if about and what:
        return f'{DECLINE_MARK}: my knowledge base has no "{what}" for {about}.{known}'
    if about:
        return f"{DECLINE_MARK}: my knowledge base has nothing on that about {about}.{known}"
    if what:
        return f'{DECLINE_MARK}: my knowledge base has nothing on "{what}".'
    return f"{DECLINE_MARK}: {_NOT_IN}"


def unknown_entity(name: str) -> str:
    return f"{DECLINE_MARK} anything about {name}: {_NOT_IN}"


def confirm(triples: Sequence[TripleView]) -> str:
    """A yes/no question the graph confirms ("Do you ship to Austria?")."""
    return "Yes: " + "; ".join(t.text for t in triples[:3]) + "."


def holdings(triples: Sequence[TripleView], node_id: int, limit: int = 8) -> list[str]:
    """The relations the graph holds about a node, each once, read from the node:
    "directed by", "headquartered in", and backwards "starred actors of Copper Sky and
    1 more", "Nimbus Home ships to it"."""
    seen: dict[tuple[str, bool], list[str]] = {}
    for t in triples:
        if t.relation_key != TYPE:
            forward = t.subject.id == node_id
            seen.setdefault((relation_words(t), forward), []).append(t.subject.label)
    out = []
    for (words, forward), subjects in list(seen.items())[:limit]:
        if forward:
            out.append(words)
            continue
        more = f" and {len(subjects) - 1} more" if len(subjects) > 1 else ""
        out.append(f"{subjects[0]}{more} {words} it" if _linking(words)
                   else f"{words} of {subjects[0]}{more}")
    return out
