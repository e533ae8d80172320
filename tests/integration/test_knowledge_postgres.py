"""The knowledge graph on PostgreSQL: the same SQL (recursive CTE, ON CONFLICT) works there.

Uses the throwaway server of ``tests/postgres.py`` (on main); skipped where that helper
or the PostgreSQL binaries are missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.config import load_settings
from dialoop.errors import InvalidInputError
from dialoop.eval.kg import is_correct, load_questions
from dialoop.knowledge import KnowledgeBase
from dialoop.store import open_database

postgres = pytest.importorskip("tests.postgres", reason="tests/postgres.py is not here")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(postgres.find_bin() is None,
                                                   reason="PostgreSQL binaries not installed")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_kgqa_on_postgresql(tmp_path: Path) -> None:
    with postgres.postgres_server() as url:
        db = open_database(url)
        try:
            kb = KnowledgeBase(db, load_settings(home=tmp_path, database_url=url))
            graph = EXAMPLES / "kgqa" / "graph.jsonl"
            assert kb.import_file(graph, user="op").added == 274
            assert kb.import_file(graph, user="op").added == 0
            bad = tmp_path / "bad.csv"
            bad.write_text("subject,relation,object,datatype\nA,r,B,\nA,size,big,integer\n")
            with pytest.raises(InvalidInputError, match="line 3"):
                kb.import_file(bad, user="op")
            questions = load_questions(EXAMPLES / "kgqa" / "questions.jsonl")
            wrong = [q.question for q in questions
                     if not is_correct(q, kb.lookup(q.question, user="u").answer or "")]
            assert wrong == []
            kb.add_fact("Mara Quell", "favourite colour", "teal", user="ann")
            assert kb.ask("What is the favourite colour of Mara Quell?",
                          user="bob").status == "unknown"
        finally:
            db.close()
