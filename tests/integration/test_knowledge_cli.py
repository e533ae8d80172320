"""`dialoop kg …` as a user runs it: a real process, a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def dialoop(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "from dialoop.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_import_query_show_stats_export(tmp_path: Path) -> None:
    graph = str(EXAMPLES / "kgqa" / "graph.jsonl")
    first, again = dialoop("kg", "import", graph), dialoop("kg", "import", graph)
    assert first.returncode == 0 and "274 triples added" in first.stdout
    assert "0 triples added, 274 already present" in again.stdout

    answer = dialoop("kg", "query", "Who is the CEO of the company that makes the Nimbus Kettle?")
    assert answer.stdout.startswith("Caspar Ode (")
    assert "triple:" in answer.stdout

    shown = dialoop("kg", "show", "mara quell")
    assert "Mara Quell — birthplace — Lindhaven" in shown.stdout and "graph.jsonl" in shown.stdout

    stats = json.loads(dialoop("kg", "stats", "--json").stdout)
    assert stats["triples (global)"] == 274 and stats["relations"] == 25

    out = tmp_path / "copy.ttl"
    assert dialoop("kg", "export", "-o", str(out)).returncode == 0
    assert "Mara Quell" in out.read_text()


def test_a_bad_file_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,relation,object,datatype\nA,r,B,\nA,size,big,integer\n")
    result = dialoop("kg", "import", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: bad.csv: line 3: 'big' is not a integer. Nothing was imported.")
    assert json.loads(dialoop("kg", "stats", "--json").stdout)["triples (global)"] == 0


def test_add_is_private_unless_global() -> None:
    assert dialoop("kg", "add", "Rex", "owner", "Alice", "--user", "ann").returncode == 0
    assert "Alice" in dialoop("kg", "query", "Who is the owner of Rex?", "--user", "ann").stdout
    assert "Alice" not in dialoop("kg", "query", "Who is the owner of Rex?", "--user", "bob").stdout


def test_eval_kg_scores_the_example_set_through_the_whole_assistant() -> None:
    """`dialoop eval kg` runs each question through open_assistant on a fresh database."""
    result = dialoop("eval", "kg", "--dataset", str(EXAMPLES / "kgqa"), "--mode", "template",
                     "--mode", "none", "--limit", "10", "--json")
    assert result.returncode == 0, result.stderr
    template, none = json.loads(result.stdout)
    assert (template["mode"], none["mode"]) == ("template", "none")
    assert sum(template["counts"].values()) == 10 == sum(none["counts"].values())
    # The graph answers its own example questions by template: no model wording involved.
    assert template["accuracy"]["all"] == 1.0, template["failures"]
    assert none["accuracy"]["all"] < template["accuracy"]["all"]  # the model alone cannot
    bad = dialoop("eval", "kg", "--dataset", str(EXAMPLES / "store_support"), "--limit", "1")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ")
    assert "Traceback" not in bad.stderr
