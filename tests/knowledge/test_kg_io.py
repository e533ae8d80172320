"""Importing and exporting graphs: formats, transactions, idempotence, line numbers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialoop.errors import InvalidInputError
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.graph import export_records
from dialoop.knowledge.io import read_records, write_records
from dialoop.knowledge.schema import KgName, KgNode, KgTriple

CSV = """subject,relation,object,datatype,unit
Aurora Lamp,type,Product,,
Aurora Lamp,price,19.99,,EUR
Aurora Lamp,made by,Lumina,,
Aurora Lamp,alias,Aurora,string,
Lumina,founded,1999-03-01,,
Lumina,slogan,Light for all,string,
"""

JSONL = """{"relation": "price", "label": "price", "aliases": ["cost"]}
{"entity": "p:aurora", "label": "Aurora Lamp", "type": "Product", "aliases": ["Aurora"]}
{"subject": "p:aurora", "relation": "price", "value": 19.99, "unit": "EUR"}
{"subject": "p:aurora", "relation": "made by", "object": "Lumina"}

{"subject": "Lumina", "relation": "founded", "value": "1999-03-01"}
"""

TURTLE = """@prefix ex: <http://example.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:aurora a ex:Product ; rdfs:label "Aurora Lamp" ; skos:altLabel "Aurora" ;
    ex:price "19.99"^^xsd:decimal ; ex:madeBy ex:lumina .
ex:lumina rdfs:label "Lumina" ; ex:founded "1999-03-01"^^xsd:date .
ex:madeBy rdfs:label "made by" .
"""

_EX, _RDFS, _XSD = ("http://example.org/", "http://www.w3.org/2000/01/rdf-schema#",
                    "http://www.w3.org/2001/XMLSchema#")
NTRIPLES = (f'<{_EX}aurora> <{_RDFS}label> "Aurora Lamp" .\n'
            f'<{_EX}aurora> <{_EX}price> "19.99"^^<{_XSD}decimal> .\n'
            f"<{_EX}aurora> <{_EX}madeBy> <{_EX}lumina> .\n")

JSONLD = """{"@context": {"ex": "http://example.org/",
              "label": "http://www.w3.org/2000/01/rdf-schema#label"},
 "@graph": [{"@id": "ex:aurora", "label": "Aurora Lamp",
             "ex:madeBy": {"@id": "ex:lumina"},
             "ex:price": {"@value": "19.99", "@type": "http://www.w3.org/2001/XMLSchema#decimal"}}]}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _count(kb: KnowledgeBase, model: type) -> int:
    with kb.db_read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.mark.parametrize(("name", "text", "facts"), [
    ("g.csv", CSV, 5), ("g.jsonl", JSONL, 4), ("g.ttl", TURTLE, 4), ("g.nt", NTRIPLES, 2),
    ("g.jsonld", JSONLD, 2),
])
def test_every_format_imports_and_answers(kb: KnowledgeBase, tmp_path: Path, name: str,
                                          text: str, facts: int) -> None:
    result = kb.import_file(_write(tmp_path, name, text), user="op")
    assert result.added == facts
    answer = kb.ask("What is the price of the Aurora Lamp?", user="anyone")
    assert answer.status == "answered"
    assert "19.99" in answer.text


def test_literals_keep_datatypes_and_units(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.import_file(_write(tmp_path, "g.csv", CSV), user="op")
    with kb.db_read() as s:
        rows = {(v, d, u, n) for v, d, u, n in s.execute(
            sa.select(KgNode.value, KgNode.datatype, KgNode.unit, KgNode.number)
            .where(KgNode.kind == "literal"))}
    assert ("19.99", "decimal", "EUR", 19.99) in rows
    assert ("Light for all", "string", None, None) in rows
    assert any(v == "1999-03-01" and d == "date" and 1999 < n < 2000 for v, d, u, n in rows)


def test_importing_twice_adds_nothing(kb: KnowledgeBase, tmp_path: Path) -> None:
    path = _write(tmp_path, "g.jsonl", JSONL)
    first = kb.import_file(path, user="op")
    before = (_count(kb, KgTriple), _count(kb, KgNode), _count(kb, KgName))
    second = kb.import_file(path, user="op")
    assert (first.added, second.added, second.existing) == (4, 0, 4)
    assert (_count(kb, KgTriple), _count(kb, KgNode), _count(kb, KgName)) == before


@pytest.mark.parametrize(("name", "text", "line"), [
    ("bad.jsonl", JSONL + '{"subject": "x", "relation": "price"}\n', 7),
    ("bad.jsonl", JSONL.replace('"value": 19.99', '"value": [1]'), 3),
    ("bad.jsonl", "{not json}\n", 1),
    ("bad.csv", CSV + "Lumina,employees,12,integer,\nLumina,size,huge,integer,\n", 9),
    ("bad.csv", CSV + "only,two\n", 8),
    ("bad.nt", NTRIPLES + "<http://example.org/x> <http://example.org/p> .\n", 4),
])
def test_a_bad_line_rejects_the_whole_file(kb: KnowledgeBase, tmp_path: Path, name: str,
                                           text: str, line: int) -> None:
    with pytest.raises(InvalidInputError, match=rf"{name}: line {line}: .*Nothing was imported"):
        kb.import_file(_write(tmp_path, name, text), user="op")
    assert _count(kb, KgTriple) == 0
    assert _count(kb, KgNode) == 0


def test_blank_nodes_are_refused_with_a_fix(kb: KnowledgeBase, tmp_path: Path) -> None:
    text = '@prefix ex: <http://example.org/> .\nex:a ex:p [ ex:q "1" ] .\n'
    with pytest.raises(InvalidInputError, match="blank nodes"):
        kb.import_file(_write(tmp_path, "b.ttl", text), user="op")
    assert _count(kb, KgTriple) == 0


def test_a_failure_while_storing_rolls_back(kb: KnowledgeBase, tmp_path: Path) -> None:
    """A key too long for the schema fails after parsing: still nothing is stored."""
    text = JSONL + '{"subject": "%s", "relation": "r", "object": "o"}\n' % ("k" * 600)
    with pytest.raises(InvalidInputError, match="line 7: the subject is longer"):
        kb.import_file(_write(tmp_path, "long.jsonl", text), user="op")
    assert _count(kb, KgTriple) == 0


def test_unknown_file_type_is_a_clear_error(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"Cannot import g\.xlsx"):
        kb.import_file(_write(tmp_path, "g.xlsx", "x"), user="op")


@pytest.mark.parametrize("fmt", ["jsonl", "turtle", "nt", "json-ld"])
def test_export_then_import_gives_the_same_graph(kb: KnowledgeBase, tmp_path: Path,
                                                 fmt: str) -> None:
    kb.import_file(_write(tmp_path, "g.jsonl", JSONL), user="op")
    kb.add_fact("Aurora", "price", "18 EUR", user="ann")  # ann's own fact is exported for ann
    out = io.StringIO()
    assert write_records(export_records(kb.graph, "ann"), out, fmt) == 5
    suffix = {"turtle": "ttl", "json-ld": "jsonld"}.get(fmt, fmt)
    copy = tmp_path / f"copy.{suffix}"
    copy.write_text(out.getvalue(), encoding="utf-8")

    from dialoop.knowledge import Graph
    from dialoop.store import open_database

    other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        g2 = Graph(other)
        assert g2.load(read_records(copy), scope=Scope.everyone(), source=copy.name, added_by="op").added == 5
        again, original = io.StringIO(), io.StringIO()
        write_records(export_records(g2, "nobody"), again, "jsonl")
        write_records(export_records(kb.graph, "ann"), original, "jsonl")
        assert sorted(again.getvalue().splitlines()) == sorted(original.getvalue().splitlines())
    finally:
        other.close()


def test_export_shows_a_user_only_what_they_see(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.import_file(_write(tmp_path, "g.jsonl", JSONL), user="op")
    kb.add_fact("Aurora Lamp", "secret discount", "15 percent", user="ann")
    for user, expected in (("ann", True), ("bob", False)):
        out = io.StringIO()
        write_records(export_records(kb.graph, user), out, "jsonl")
        assert ("secret discount" in out.getvalue()) is expected
