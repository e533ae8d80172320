"""Imports read the uploaded file and nothing else; a CSV saved by Excel (with a BOM) imports."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialoop.errors import InvalidInputError
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.schema import KgTriple

CONTEXT = {"@context": {"ex": "http://example.org/",
                        "label": "http://www.w3.org/2000/01/rdf-schema#label"}}


@pytest.fixture
def context_server() -> Iterator[tuple[str, list[str]]]:
    """A JSON-LD context on loopback, and the list of paths it was asked for."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits.append(self.path)
            body = json.dumps(CONTEXT).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/ld+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def _facts(kb: KnowledgeBase) -> int:
    with kb.db_read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(KgTriple))


def _jsonld(tmp_path: Path, context: object) -> Path:
    doc = {"@context": context,
           "@graph": [{"@id": "ex:aurora", "label": "Aurora Lamp",
                       "ex:madeBy": {"@id": "ex:lumina"}}]}
    path = tmp_path / "evil.jsonld"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _links(url: str, secret: Path) -> list[tuple[str, object]]:
    """Every place a JSON-LD document can name a context to fetch, with what it names."""
    inline = CONTEXT["@context"]
    return [
        (url + "/ctx", url + "/ctx"),
        (url + "/list", [inline, url + "/list"]),
        (url + "/import", {"@version": 1.1, "@import": url + "/import"} | inline),
        (url + "/scoped", inline | {"ex:madeBy": {"@id": "http://example.org/madeBy",
                                                  "@context": url + "/scoped"}}),
        (secret.as_uri(), secret.as_uri()),
        ("/etc/hostname", "file:///etc/hostname"),
        ("ctx.jsonld", "ctx.jsonld"),  # relative: rdflib would open it from the cwd
    ]


def test_a_linked_context_is_refused_before_anything_is_fetched(
        kb: KnowledgeBase, tmp_path: Path, context_server: tuple[str, list[str]]) -> None:
    url, hits = context_server
    secret = tmp_path / "secret.jsonld"
    secret.write_text(json.dumps(CONTEXT), encoding="utf-8")  # a valid context, if read
    for named, context in _links(url, secret):
        with pytest.raises(InvalidInputError) as refused:
            kb.import_file(_jsonld(tmp_path, context), user="op")
        message = str(refused.value)
        assert named in message and "Nothing was imported" in message, message
        assert "put the context itself in the file" in message
    assert hits == []  # the server was never asked
    assert _facts(kb) == 0


def test_an_inline_context_still_imports(kb: KnowledgeBase, tmp_path: Path) -> None:
    result = kb.import_file(_jsonld(tmp_path, CONTEXT["@context"]), user="op")
    assert result.added == 1 and result.names >= 1  # made by Lumina; the label is a name


def test_relative_ids_do_not_reveal_the_servers_directory(kb: KnowledgeBase,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "rel.jsonld"
    path.write_text(json.dumps({"@id": "aurora", "http://example.org/madeBy": {"@id": "lumina"}}),
                    encoding="utf-8")
    assert kb.import_file(path, user="op").added == 1
    with kb.db_read() as s:
        keys = " ".join(str(row) for row in s.execute(sa.text("SELECT key FROM kg_nodes")))
    assert "file:" not in keys and str(Path.cwd()) not in keys
    assert "aurora" in keys and "lumina" in keys


@pytest.mark.parametrize("name", ["excel.csv", "excel.jsonl"])
def test_a_utf8_byte_order_mark_is_skipped(kb: KnowledgeBase, tmp_path: Path, name: str) -> None:
    text = ("subject,relation,object\nAurora Lamp,made by,Lumina\n" if name.endswith(".csv")
            else '{"subject": "Aurora Lamp", "relation": "made by", "object": "Lumina"}\n')
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8-sig"))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert kb.import_file(path, user="op").added == 1
    assert kb.import_file(path, user="op").added == 0  # the same fact, not a second subject
