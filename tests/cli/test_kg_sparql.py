"""``dialoop kg sparql``: results as SPARQL JSON or CSV, per-user scopes, bad queries exit 2."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dialoop.cli import cli


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_sparql_from_the_command_line() -> None:
    _run("kg", "add", "Aurora Lamp", "price", "19.99 EUR", "--global")
    _run("kg", "add", "Ann", "salary", "91000", "--user", "ann")
    query = "SELECT ?s ?o WHERE { ?s r:salary ?o }"
    ann = json.loads(_run("kg", "sparql", query, "--user", "ann"))
    assert [b["o"]["value"] for b in ann["results"]["bindings"]] == ["91000"]
    bob = json.loads(_run("kg", "sparql", query, "--user", "bob"))
    assert bob["results"]["bindings"] == []
    csv_out = _run("kg", "sparql", "SELECT ?o WHERE { ?s r:price ?o }", "--format", "csv",
                   "--user", "bob")
    assert csv_out.splitlines() == ["o", "19.99"]


def test_bad_and_update_queries_exit_2_and_change_nothing() -> None:
    _run("kg", "add", "Ann", "salary", "91000", "--user", "ann")
    bad = _run("kg", "sparql", "SELECT ?s WHERE {", "--user", "ann", code=2)
    assert "does not parse" in bad
    update = _run("kg", "sparql", "DELETE WHERE { ?s ?p ?o }", "--user", "ann", code=2)
    assert "read-only" in update
    still = json.loads(_run("kg", "sparql", "SELECT ?o WHERE { ?s r:salary ?o }",
                            "--user", "ann"))
    assert len(still["results"]["bindings"]) == 1
