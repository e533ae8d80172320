"""The one call the rest of dialoop makes: :meth:`KnowledgeBase.lookup`.

    kb = KnowledgeBase(db, settings)
    found = kb.lookup("How much is the Halo Desk Lamp?", user="ann")
    found.reply      # say this instead of generating (a grounded answer or "I don't know …")
    found.evidence   # Evidence items (triples, document passages) for build_prompt

``reply`` is set when the graph answered and ``knowledge_answer = "template"``, or
when the question is about the knowledge, nothing answers it and
``knowledge_decline`` is on. Otherwise the model answers, with ``evidence`` (if any)
in its prompt: graph triples and document passages fused by reciprocal rank.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import orm

from dialoop.config import Settings
from dialoop.engine import Chunk, Usage
from dialoop.engine.embedding import Embedder, default_embedder
from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence, Scope
from dialoop.knowledge.documents import Documents
from dialoop.knowledge.graph import Graph, LoadResult, Term, TripleView
from dialoop.knowledge.linking import Linker, RelationMatcher
from dialoop.knowledge.reasoning import Answer, Reasoner
from dialoop.knowledge.teaching import LearnedAlias, learn_alias
from dialoop.store import Database

__all__ = ["NOTHING", "KnowledgeBase", "KnowledgeResult", "fuse", "parse_fact"]

log = logging.getLogger(__name__)

DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


@dataclass(frozen=True)
class KnowledgeResult:
    """What the knowledge says about a question."""

    found: bool  # the graph or the documents had something to answer with
    declined: bool  # about the knowledge, but not answered by it
    reply: str | None  # the text to give instead of generating, if any
    answer: str | None  # the graph's own answer sentence (or decline), whatever the mode
    evidence: list[Evidence] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {"found": self.found, "declined": self.declined, "answer": self.answer,
                "direct": self.reply is not None, "values": self.values, **self.details}

    def as_chunks(self, prompt_tokens: int) -> Iterator[Chunk]:
        """``reply`` as the one chunk of a finished answer (nothing was generated)."""
        assert self.reply is not None
        yield Chunk(self.reply, "stop", Usage(prompt_tokens, 0, 0, 0.0, None))


NOTHING = KnowledgeResult(False, False, None, None)


def fuse(*ranked: Sequence[Evidence], k: int = 60, limit: int | None = None) -> list[Evidence]:
    """Reciprocal rank fusion of ranked evidence lists into one (scores = fused scores).

    Items with the same ``source`` are merged. ``k`` = 60 as in Cormack et al. (2009).
    """
    scores: dict[str, float] = {}
    items: dict[str, Evidence] = {}
    for ranking in ranked:
        for rank, item in enumerate(ranking):
            scores[item.source] = scores.get(item.source, 0.0) + 1.0 / (k + rank + 1)
            items.setdefault(item.source, item)
    order = sorted(scores, key=lambda s: -scores[s])[:limit]
    return [Evidence(items[s].kind, items[s].text, s, scores[s]) for s in order]


class KnowledgeBase:
    """The graph, the documents, and how a question is looked up in them."""

    def __init__(self, db: Database, settings: Settings, *,
                 embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self.graph = Graph(db)
        self.documents = Documents(db, self._lazy_embedder)
        self.linker = Linker(self.graph, _LazyEmbedder(self))
        self.matcher = RelationMatcher(self.graph, _LazyEmbedder(self))
        self.reasoner = Reasoner(self.graph, self.linker, self.matcher)

    def db_read(self) -> AbstractContextManager[orm.Session]:
        """A read transaction on the knowledge's database."""
        return self.graph.db.read()

    def _lazy_embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    # -- asking -------------------------------------------------------------------------

    def lookup(self, question: str, *, user: str) -> KnowledgeResult:
        """Answer ``question`` for ``user`` from the knowledge they may see."""
        if self.graph.is_empty() and self.documents.is_empty():
            return NOTHING  # no knowledge loaded: cost nothing
        result = self.reasoner.answer(question, user=user)
        graph_evidence = [_triple_evidence(t) for t in result.triples]
        details: dict[str, object] = {"graph": result.to_dict()}
        if result.status == "answered":
            docs = self.documents.search(question, user=user, limit=3, relevant_only=True)
            evidence = fuse(graph_evidence, docs) if docs else graph_evidence
            if self.settings.knowledge_answer == "model":
                evidence = [Evidence("answer", f"Answer: {result.text}", "kg:answer"), *evidence]
            reply = _cite(result.text, graph_evidence) \
                if self.settings.knowledge_answer == "template" else None
            return KnowledgeResult(True, False, reply, result.text, evidence, result.values,
                                   details)
        docs = self.documents.search(question, user=user, limit=3, relevant_only=True)
        if docs:
            return KnowledgeResult(True, False, None, None, docs, [], details)
        if result.status == "unknown":
            reply = result.text if self.settings.knowledge_decline else None
            return KnowledgeResult(False, True, reply, result.text, [], [], details)
        return KnowledgeResult(False, False, None, None, [], [], details)

    # -- the dialogue manager's lookup seam (find / entities / aliases) -----------------

    def find(self, message: str, *, user: str, state: object = None) -> list[Evidence]:
        """Evidence for ``message`` (graph triples and passages), best first."""
        return self.lookup(message, user=user).evidence

    def entities(self, kind: str) -> list[str]:
        """Labels of the global entities whose type is ``kind`` ("product" → Product)."""
        return list(self.aliases(kind))

    def aliases(self, kind: str) -> dict[str, list[str]]:
        """Each global entity of type ``kind`` with its label and aliases."""
        return self.graph.members_with_names(kind)

    def ask(self, question: str, *, user: str) -> Answer:
        """The graph's structured answer (no documents, no settings applied)."""
        return self.reasoner.answer(question, user=user)

    # -- teaching and loading ------------------------------------------------------------

    def add_fact(self, subject: str, relation: str, obj: Term, *, user: str,
                 scope: Scope | None = None, source: str = "api",
                 lesson_id: int | None = None) -> TripleView | None:
        """Teach one fact (see :meth:`Graph.add_fact`); private to ``user`` unless global."""
        return self.graph.add_fact(subject, relation, obj, user=user, scope=scope,
                                   source=source, lesson_id=lesson_id)

    def learn_correction(self, text: str, *, user: str, scope: Scope,
                         lesson_id: int | None = None) -> TripleView | None:
        """Store a correction ``user`` taught in ``scope`` that states a plain fact as a
        triple of that scope.

        Understood: "S | R | O", "The R of S is O", "S's R is O". Anything else returns
        None (the learning loop keeps it as a correction memory instead).
        """
        fact = parse_fact(text)
        if fact is None:
            return None
        return self.add_fact(*fact, user=user, scope=scope, source="lesson", lesson_id=lesson_id)

    def learn_alias(self, question: str, correction: str, *, user: str, scope: Scope,
                    lesson_id: int | None = None,
                    knowledge: Mapping[str, Any] | None = None) -> LearnedAlias | None:
        """A correction of a graph answer that teaches words for a relation: "What films does
        X appear in?" corrected with "Copper Sky" (or "no, I meant the films she starred
        in") makes "appear in" an alias of ``starred_actors`` in ``scope``, tied to lesson
        ``lesson_id`` (see :mod:`~dialoop.knowledge.teaching`). None when the correction
        teaches no alias. ``knowledge``: the corrected turn's knowledge trace, if any."""
        if self.graph.is_empty():
            return None
        return learn_alias(self.graph, self.reasoner, self.matcher, question, correction,
                           user=user, scope=scope, lesson_id=lesson_id, knowledge=knowledge)

    def move_aliases(self, *, scope: Scope, lesson_id: int, to_scope: Scope,
                     to_lesson_id: int) -> int:
        """The relation aliases a lesson taught follow it to a new lesson and scope (a
        lesson promoted to global)."""
        return self.graph.move_relation_aliases(scope=scope, lesson_id=lesson_id,
                                                to_scope=to_scope, to_lesson_id=to_lesson_id)

    def forget(self, *, scope: Scope, lesson_id: int | None = None,
               triple_ids: Sequence[int] = ()) -> int:
        """Remove the facts of ``scope`` taught in a lesson (or by id); returns how many.
        The relation aliases the lesson taught go too."""
        return self.graph.remove(scope=scope, lesson_id=lesson_id, triple_ids=triple_ids)

    def import_file(self, path: Path, *, user: str, scope: Scope | None = None,
                    fmt: str | None = None) -> LoadResult:
        """Import a graph file (CSV, JSONL, RDF) or a document (text, Markdown, HTML) that
        ``user`` adds for ``scope`` (default: everyone)."""
        scope = scope or Scope.everyone()
        if fmt is None and path.suffix.lower() in DOCUMENT_SUFFIXES:
            added = self.documents.ingest(path, user=user, scope=scope)
            return LoadResult(added, 0 if added else 1, 0)
        from dialoop.knowledge.io import FORMATS, read_records  # rdflib: only when importing

        if fmt is None and path.suffix.lower() not in FORMATS:
            known = ", ".join(sorted({*FORMATS, *DOCUMENT_SUFFIXES}))
            raise InvalidInputError(f"Cannot import {path.name}: use one of {known}.")
        records = read_records(path, fmt)
        return self.graph.load(records, scope=scope, source=path.name, added_by=user)


class _LazyEmbedder:
    """Loads the embedding model only when linking actually needs it."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, kb: KnowledgeBase) -> None:
        self._kb = kb

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._kb._lazy_embedder().embed(texts)


_FACT_PATTERNS = [
    re.compile(r"^\s*(?P<s>[^|]+?)\s*\|\s*(?P<r>[^|]+?)\s*\|\s*(?P<o>[^|]+?)\s*$"),
    re.compile(r"^\s*the (?P<r>.+?) of (?P<s>.+?) (?:is|are|was|were) (?P<o>.+?)[.!]?\s*$", re.I),
    re.compile(r"^\s*(?P<s>.+?)['’]s (?P<r>.+?) (?:is|are|was|were) (?P<o>.+?)[.!]?\s*$", re.I),
]


def parse_fact(text: str) -> tuple[str, str, str] | None:
    """(subject, relation, object) if ``text`` states one plain fact, else None."""
    if len(text) > 300 or "\n" in text.strip():
        return None
    for pattern in _FACT_PATTERNS:
        m = pattern.match(text)
        if m and all(len(m.group(g).split()) <= 8 for g in ("s", "r")):
            s, r, o = (m.group(g).strip() for g in ("s", "r", "o"))
            s = re.sub(r"^the ", "", s, flags=re.I) if pattern is not _FACT_PATTERNS[0] else s
            return s, r, o
    return None


def _triple_evidence(t: TripleView) -> Evidence:
    return Evidence("triple", t.text, t.citation, 1.0)


def _cite(text: str, evidence: Sequence[Evidence]) -> str:
    if not evidence:
        return text
    return f"{text} [{', '.join(e.source for e in evidence[:5])}]"
