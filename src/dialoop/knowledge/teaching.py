"""Relation aliases taught by corrections: the learning loop for the graph's vocabulary.

The graph declined "What films does Elena Voss appear in?" (no relation says "appear")
or answered it from the wrong relation; the user corrects the turn, either with the
answer ("Copper Sky") or by naming the relation ("no, I meant the films she starred
in"). :func:`learn_alias` finds the one relation that correction points at among the
facts of the entity the question named, takes the words of the question nothing in
the graph explained ("appear in") and stores them as an alias of that relation in the
correction's scope (``kg_relation_aliases``: the user's own, unless an admin taught
globally), tied to the lesson: forgetting the lesson forgets the alias.

It teaches nothing unless all of this holds: the question names exactly one entity of
the graph; the correction states values of exactly one of its relations, or names
exactly one of them and states no values of another; the question does not already
name that relation; the unexplained words are one to four; and, asked again with the
alias, the graph answers the question from that relation (with the corrected values,
when the correction gave some). Otherwise the alias is removed again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dialoop.evidence import Scope
from dialoop.knowledge.analysis import Analysis
from dialoop.knowledge.graph import TYPE, Graph, TripleView
from dialoop.knowledge.linking import RelationMatcher
from dialoop.knowledge.reasoning import Reasoner
from dialoop.knowledge.words import QUESTION_WORDS, Token, norm, tokenize

__all__ = ["LearnedAlias", "learn_alias"]

# At most this many words of a question become one alias: more is a question the graph
# misread as a whole, not a missing word for a relation.
MAX_ALIAS_WORDS = 4
# Words that shape a question without naming a relation (never part of an alias).
_SHAPE = {"is", "are", "was", "were", "do", "does", "did", "has", "have", "can", "will",
          "kind", "sort", "type", "many", "much", "please", "exactly", "currently", "also"}
# A preposition right after the alias words belongs to it ("appear in", "based in").
_PARTICLES = {"in", "on", "at", "by", "for", "with", "from", "to", "of", "about", "into"}
_NUMBER = re.compile(r"[\d.,]+")


@dataclass(frozen=True)
class LearnedAlias:
    """An alias a correction taught, and the graph's answer with it."""

    id: int
    relation: str  # the relation's key
    phrase: str  # the words of the question that now name it
    scope: str  # "user:<id>" or "global"
    answer: str  # the graph's answer to the corrected question, with the alias
    clarification: bool  # the correction named the relation rather than its values

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "relation": self.relation, "phrase": self.phrase,
                "scope": self.scope, "answer": self.answer,
                "clarification": self.clarification}


def learn_alias(graph: Graph, reasoner: Reasoner, matcher: RelationMatcher, question: str,
                correction: str, *, user: str, scope: Scope, lesson_id: int | None = None,
                knowledge: Mapping[str, Any] | None = None) -> LearnedAlias | None:
    """Teach the relation alias ``correction`` of ``question`` implies, or nothing (see the
    module docstring). ``knowledge``: what the corrected turn's trace says the knowledge
    graph did (``DialogueTrace.knowledge``); when given, the turn must have looked an
    entity up in the graph."""
    if knowledge is not None and not _graph_was_asked(knowledge):
        return None
    before = reasoner.answer(question, user=user)
    a = before.analysis
    if a is None or len({x.node_id for x in a.anchors}) != 1:
        return None
    anchor = a.anchors[0].node_id
    facts = [t for t in graph.edges([anchor], user, limit=1000) if t.relation_key != TYPE]
    target = _relation_meant(facts, anchor, correction, matcher, user)
    if target is None:
        return None
    relation_id, values = target
    if any(m.relation_id == relation_id and m.lexical for m in a.relations):
        return None  # the question named it already: the words are not what was missing
    phrase = _unexplained_phrase(a)
    if phrase is None:
        return None
    alias_id = graph.add_relation_alias(relation_id, phrase, scope=scope, added_by=user,
                                        lesson_id=lesson_id)
    if alias_id is None:
        return None  # known already, and still not answered: this is not the fix
    after = reasoner.answer(question, user=user)
    used = {t.relation_id for t in after.triples}
    said = {norm(v) for v in after.values}
    if (after.status != "answered" or relation_id not in used
            or (values and not {norm(v) for v in values} <= said)):
        graph.remove_relation_alias(alias_id)
        return None
    key = next(t.relation_key for t in facts if t.relation_id == relation_id)
    return LearnedAlias(alias_id, key, phrase, str(scope), after.text, not values)


def _graph_was_asked(knowledge: Mapping[str, Any]) -> bool:
    """Whether a turn's knowledge trace shows the graph answering or declining a question
    about an entity it holds."""
    graph = knowledge.get("graph") or {}
    analysis = graph.get("analysis") or {}
    return graph.get("status") in ("answered", "unknown") and bool(analysis.get("anchors"))


def _relation_meant(facts: Sequence[TripleView], anchor: int, correction: str,
                    matcher: RelationMatcher, user: str) -> tuple[int, list[str]] | None:
    """The one relation of the anchor's facts the correction points at, with the values
    of it the correction states ([] when it names the relation instead); None when it
    points at none or at more than one."""
    said = f" {norm(correction)} "
    stated: dict[int, list[str]] = {}
    for t in facts:
        other = t.object if t.subject.id == anchor else t.subject
        n = norm(other.label)
        if n and f" {n} " in said and other.label not in stated.get(t.relation_id, []):
            stated.setdefault(t.relation_id, []).append(other.label)
    tokens = tokenize(correction)
    named = {m.relation_id for m in matcher.match(tokens, set(range(len(tokens))), user)
             if m.lexical}
    if stated:
        most = max(len(v) for v in stated.values())
        best = [rid for rid, v in stated.items() if len(v) == most]
        if len(best) != 1 or (named and best[0] not in named):
            return None  # the values fit two relations, or the words name another one
        return best[0], stated[best[0]]
    held = named & {t.relation_id for t in facts}
    if len(held) == 1:
        return next(iter(held)), []
    return None


def _unexplained_phrase(a: Analysis) -> str | None:
    """The words of the question the graph did not explain, as the alias to store: the
    content words outside the named entities, classes and numbers that no relation
    claimed as a whole, without the noun a question word asks for ("*what films* does
    X appear in" → "appear in")."""
    tokens = a.tokens
    taken = {i for x in [*a.anchors, *a.classes] for i in range(x.start, x.end)}
    taken |= {i for m in a.relations if m.lexical and m.score >= 1.0 for i in m.positions}
    asked = _asked_noun(tokens)
    keep = [i for i, t in enumerate(tokens)
            if i not in taken and i != asked and not t.stop and t.lower not in QUESTION_WORDS
            and t.lower not in _SHAPE and not _NUMBER.fullmatch(t.lower)]
    if not keep or len(keep) > MAX_ALIAS_WORDS:
        return None
    words = [tokens[i].lower for i in keep]
    nxt = keep[-1] + 1
    if nxt < len(tokens) and nxt not in taken and tokens[nxt].lower in _PARTICLES:
        words.append(tokens[nxt].lower)
    return " ".join(words)


def _asked_noun(tokens: Sequence[Token]) -> int | None:
    """The position of the noun right after "what"/"which"/"how many" (skipping "kind
    of" and the like): the kind of answer asked for, not words for the relation."""
    for i, t in enumerate(tokens):
        if t.lower in ("what", "which", "how"):
            j = i + 1
            while j < len(tokens) and (tokens[j].lower in _SHAPE or tokens[j].lower == "of"):
                j += 1
            if j < len(tokens) and not tokens[j].stop and j > i + (t.lower == "how"):
                return j
            return None
    return None
