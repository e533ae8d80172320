"""Documents: chunking, ingestion (idempotent, scoped) and hybrid retrieval."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence, Scope
from dialoop.knowledge import KnowledgeBase, fuse
from dialoop.knowledge.documents import MAX_WORDS, split_passages
from dialoop.knowledge.schema import KgChunk

POLICY = Path(__file__).resolve().parents[2] / "examples" / "store_support" / "knowledge.md"

HTML = """<html><head><title>t</title><style>p {color: red}</style></head><body>
<nav>Home | Shop</nav>
<h1>Care guide</h1><p>Wash the wool throw cold, by hand, and dry it flat.</p>
<h2>Cast iron</h2><p>Season the pan with oil after each wash. Never use a dishwasher.</p>
<script>alert(1)</script></body></html>"""


def test_markdown_is_cut_at_headings_and_kept_short() -> None:
    text = "# A\n\nfirst part.\n\n## B\n\n" + " ".join(["word"] * (MAX_WORDS * 2 + 5)) + "."
    passages = split_passages(text)
    assert [p.heading for p in passages] == ["A", "B", "B", "B"]
    assert all(len(p.text.split()) <= MAX_WORDS for p in passages)
    assert passages[0].text == "first part."


def test_html_loses_scripts_styles_and_navigation(kb: KnowledgeBase, tmp_path: Path) -> None:
    page = tmp_path / "care.html"
    page.write_text(HTML, encoding="utf-8")
    assert kb.import_file(page, user="op").added == 2
    with kb.db_read() as s:
        texts = s.scalars(sa.select(KgChunk.heading + ": " + KgChunk.text)).all()
    assert texts == ["Care guide: Wash the wool throw cold, by hand, and dry it flat.",
                     "Cast iron: Season the pan with oil after each wash. Never use a dishwasher."]


@pytest.mark.slow  # embeds passages with the real MiniLM
def test_hybrid_search_finds_the_passage_and_cites_it(kb: KnowledgeBase) -> None:
    assert kb.import_file(POLICY, user="op").added >= 5
    assert kb.import_file(POLICY, user="op").added == 0  # the same content again: nothing
    hits = kb.documents.search("How long do refunds take?", user="anyone", limit=3)
    assert hits[0].kind == "document" and hits[0].source == "knowledge.md#1"
    assert "within 5 business days" in hits[0].text
    unrelated = kb.documents.search("Who won the football world cup in 1954?", user="anyone",
                                    relevant_only=True)
    assert unrelated == []


@pytest.mark.slow
def test_a_private_document_is_found_only_by_its_owner(kb: KnowledgeBase,
                                                       tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("My locker code at the gym is 4711. The locker is number 12.")
    kb.import_file(note, user="ann", scope=Scope.of("ann"))
    assert kb.documents.search("What is my locker code?", user="ann", relevant_only=True)
    assert kb.documents.search("What is my locker code?", user="bob") == []


def test_an_empty_document_is_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text("\n\n   \n")
    with pytest.raises(InvalidInputError, match="no text"):
        kb.import_file(empty, user="op")


def test_fuse_ranks_items_found_by_several_retrievers_first() -> None:
    a = Evidence("triple", "t1", "triple:1")
    b = Evidence("document", "d1", "doc#1")
    c = Evidence("lesson", "l1", "lesson:3")
    fused = fuse([a, b], [b, c], [b])
    assert [e.source for e in fused] == ["doc#1", "triple:1", "lesson:3"]
    assert fused[0].score > fused[1].score > fused[2].score
