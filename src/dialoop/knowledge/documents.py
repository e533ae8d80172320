"""Documents: text, Markdown and HTML files cut into passages, found by hybrid retrieval.

A passage is found two ways: BM25 over stemmed words (bm25s) and cosine similarity
of MiniLM embeddings; the two rankings are fused by reciprocal rank. Embeddings are
computed once, at ingestion, and stored with the passage; the BM25 index is built in
memory on first search and rebuilt when the passages a user sees change.

Passages are at most ~120 words: MiniLM reads 256 word pieces, and a short passage
puts less irrelevant text into a small model's prompt.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence, Scope
from dialoop.knowledge.graph import visible
from dialoop.knowledge.schema import KgChunk, KgDocument
from dialoop.store import Database

__all__ = ["Documents", "Passage", "read_text_file", "split_passages"]

log = logging.getLogger(__name__)

MAX_WORDS = 120
RELEVANT_COSINE = 0.4  # below this a passage is not taken as answering the question
_RRF_K = 60


@dataclass(frozen=True)
class Passage:
    heading: str | None
    text: str


def split_passages(text: str, *, markdown: bool = True) -> list[Passage]:
    """Sections (Markdown headings) → paragraphs → passages of at most MAX_WORDS words."""
    passages: list[Passage] = []
    heading: str | None = None
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            passages.append(Passage(heading, " ".join(buffer)))
            buffer.clear()

    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        m = re.match(r"^(#{1,6})\s+(.+?)\s*#*$", block.splitlines()[0]) if markdown else None
        if m:
            flush()
            heading = m.group(2).strip()[:255]
            block = "\n".join(block.splitlines()[1:]).strip()
            if not block:
                continue
        for piece in _pieces(" ".join(block.split())):
            if sum(len(b.split()) for b in buffer) + len(piece.split()) > MAX_WORDS:
                flush()
            buffer.append(piece)
    flush()
    return passages


def _pieces(paragraph: str) -> list[str]:
    """A paragraph, or its sentences (then word windows) if it is too long."""
    if len(paragraph.split()) <= MAX_WORDS:
        return [paragraph]
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        words = sentence.split()
        out += [" ".join(words[i:i + MAX_WORDS]) for i in range(0, len(words), MAX_WORDS)]
    return out


def read_text_file(path: Path) -> str:
    """A UTF-8 file's text, or an InvalidInputError that says why not."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"No file {path}.") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path.name} is not UTF-8 text: {exc.reason}.") from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror}.") from None


def _html_to_markdown(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "head"]):
        tag.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for block in soup.find_all(["p", "li", "tr", "div", "br"]):
        block.insert_after("\n\n")
    return soup.get_text()


class _Index:
    def __init__(self, ids: list[int], sources: list[str], texts: list[str],
                 vectors: np.ndarray) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG on import and logs every index build
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        import Stemmer

        self.ids, self.sources, self.texts, self.vectors = ids, sources, texts, vectors
        self.stemmer = Stemmer.Stemmer("english")
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer,
                                       show_progress=False), show_progress=False)

    def bm25_ranking(self, query: str, k: int) -> list[tuple[int, float]]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        if not tokens.vocab:
            return []
        docs, scores = self.bm25.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class Documents:
    """Ingested documents and hybrid search over their passages, scoped per user."""

    def __init__(self, db: Database, embedder: Callable[[], Embedder]) -> None:
        self.db = db
        self._embedder = embedder
        self._indexes: OrderedDict[str, tuple[object, _Index]] = OrderedDict()
        self._lock = threading.Lock()

    def is_empty(self) -> bool:
        with self.db.read() as s:
            return s.scalar(sa.select(KgChunk.id).limit(1)) is None

    def ingest(self, path: Path, *, user: str, scope: Scope) -> int:
        """Store the passages of ``path``; returns how many (0: this content is already in)."""
        raw = read_text_file(path)
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            text, markdown = _html_to_markdown(raw), True
        else:
            text, markdown = raw, suffix in (".md", ".markdown")
        passages = split_passages(text, markdown=markdown)
        if not passages:
            raise InvalidInputError(f"{path.name} has no text to import.")
        digest = hashlib.sha256(raw.encode()).hexdigest()
        title = passages[0].heading or path.stem
        vectors = self._embedder().embed([_passage_text(p) for p in passages])  # (P, dim)
        with self.db.write() as s:
            if s.scalar(sa.select(KgDocument.id).where(KgDocument.scope == str(scope),
                                                       KgDocument.digest == digest)):
                return 0
            doc = KgDocument(scope=str(scope), source=path.name[:512], title=title[:255],
                             digest=digest, added_by=user, meta={"path": str(path)})
            s.add(doc)
            s.flush()
            s.add_all(KgChunk(document_id=doc.id, position=i, heading=p.heading, text=p.text,
                              embedding=vectors[i].astype(np.float32).tobytes())
                      for i, p in enumerate(passages))
        return len(passages)

    def search(self, query: str, *, user: str, limit: int = 5,
               relevant_only: bool = False) -> list[Evidence]:
        """The passages that best answer ``query``, best first, as citable evidence."""
        index = self._index(user)
        if index is None:
            return []
        q = self._embedder().embed([query])[0]  # (dim,)
        cosines = index.vectors @ q  # (N,)
        by_cosine = np.argsort(-cosines)[: max(limit * 4, 20)].tolist()
        by_bm25 = [i for i, _ in index.bm25_ranking(query, max(limit * 4, 20))]
        fused: dict[int, float] = {}
        for ranking in (by_cosine, by_bm25):
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 1.0 / (_RRF_K + rank + 1)
        order = sorted(fused, key=lambda i: -fused[i])
        if relevant_only:
            order = [i for i in order if cosines[i] >= RELEVANT_COSINE]
        return [Evidence("document", index.texts[i], index.sources[i], fused[i])
                for i in order[:limit]]

    def _index(self, user: str) -> _Index | None:
        with self.db.read() as s:
            version = tuple(s.execute(
                sa.select(sa.func.count(KgChunk.id), sa.func.max(KgChunk.id))
                .join(KgDocument, KgDocument.id == KgChunk.document_id)
                .where(visible(KgDocument.scope, user))).one())
        if not version[0]:
            return None
        with self._lock:
            cached = self._indexes.get(user)
            if cached and cached[0] == version:
                self._indexes.move_to_end(user)
                return cached[1]
        with self.db.read() as s:
            rows = s.execute(
                sa.select(KgChunk.id, KgDocument.source, KgChunk.position, KgChunk.heading,
                          KgChunk.text, KgChunk.embedding)
                .join(KgDocument, KgDocument.id == KgChunk.document_id)
                .where(visible(KgDocument.scope, user)).order_by(KgChunk.id)).all()
        index = _Index(
            [r[0] for r in rows], [f"{r[1]}#{r[2]}" for r in rows],
            [_passage_text(Passage(r[3], r[4])) for r in rows],
            np.stack([np.frombuffer(r[5], dtype=np.float32) for r in rows]),  # (N, dim)
        )
        with self._lock:
            self._indexes[user] = (version, index)
            if len(self._indexes) > 8:
                self._indexes.popitem(last=False)
        return index


def _passage_text(p: Passage) -> str:
    return f"{p.heading}: {p.text}" if p.heading else p.text
