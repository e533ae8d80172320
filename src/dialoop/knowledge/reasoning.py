"""Answering a question from the graph: the graph reasons, a template puts it into words.

:class:`Reasoner` runs four stages, each in its own module and testable on its own:

1. **Analyse** (:mod:`~dialoop.knowledge.analysis`): link entities, tell classes
   ("products") from individuals ("Aurora Lamp"), score relations on the words left
   over, and spot comparisons ("under 20 euros"), counts ("how many") and
   superlatives ("cheapest") → an :class:`Analysis`.
2. **Plan** (:mod:`~dialoop.knowledge.query`): the typed query the analysis asks. A
   question about an individual is a *path* query (1–3 hops from it along the
   mentioned relations, in either direction); a question about a class or with a
   constraint is a *set* query (members ∩ links to the named individuals ∩ numeric
   filters), listed, counted or ordered as asked.
3. **Execute** (:mod:`~dialoop.knowledge.execution`, SQL in
   :mod:`~dialoop.knowledge.traversal`): one recursive SQL walk for a path query,
   where the best relation sequence wins (each hop must be asked for, every clearly
   named relation must be used); one SELECT for a set query.
4. **Word** (:mod:`~dialoop.knowledge.phrasing`): an :class:`Answer` with the values,
   the triples it rests on, and a sentence.

A question that names something in the graph, or asks for a relation the graph has
about something it does not know, but that the graph cannot answer is ``unknown``:
the caller says "I don't know" rather than guess. Anything else is ``unrelated``.
"""

from __future__ import annotations

from dataclasses import replace

from dialoop.knowledge.analysis import Analysis, analyse
from dialoop.knowledge.execution import Answer, execute
from dialoop.knowledge.graph import Graph
from dialoop.knowledge.linking import Link, Linker, RelationMatcher
from dialoop.knowledge.query import Decline, Describe, PathQuery, Query, SoleSubject, plan
from dialoop.knowledge.traversal import described, sole_subject

__all__ = ["Analysis", "Answer", "Reasoner", "analyse"]


class Reasoner:
    """Answers questions from the graph (see the module docstring)."""

    def __init__(self, graph: Graph, linker: Linker, matcher: RelationMatcher,
                 *, max_hops: int = 3) -> None:
        self.graph = graph
        self.linker = linker
        self.matcher = matcher
        self.max_hops = max_hops

    def answer(self, question: str, *, user: str) -> Answer:
        a = analyse(question, user, self.graph, self.linker, self.matcher)
        query = plan(a)
        if isinstance(query, SoleSubject):
            a, query = self._ask_the_subject(a, query, user)
        result = execute(self.graph, query, user, max_hops=self.max_hops)
        if result.status == "unknown" and self._only_mentioned(query, user):
            result = Answer("unrelated", "")
        result.analysis = a
        return result

    def _ask_the_subject(self, a: Analysis, query: SoleSubject, user: str
                         ) -> tuple[Analysis, Query]:
        """"What are your opening hours?": the one entity with opening hours is what the
        question is about; it becomes the anchor, and the question is planned again."""
        subject = sole_subject(self.graph, query.relation, user)
        if subject is None:
            return a, query.otherwise
        label = self.graph.nodes([subject])[subject].label
        a = replace(a, anchors=[Link(subject, label, "", -1, -1, "relation", 1.0)])
        return a, plan(a)

    def _only_mentioned(self, query: Query, user: str) -> bool:
        """Whether the individuals an unanswered question names are ones the graph says
        nothing about beyond their type ("France", only a country the store ships to):
        then the question is not about the knowledge, and is left to the model."""
        if not isinstance(query, PathQuery | Describe | Decline) or not query.anchors:
            return False
        return not described(self.graph, query.anchors, user)
