"""Knowledge graphs nobody tuned for: answer accuracy on two graphs whose relations carry
only their own names (``starred_actors``, ``headquarteredIn``), per question type.

    python benchmarks/bench_kg_foreign.py [--json] [--failures]

The graphs and questions are in benchmarks/kg_foreign/ (written by its make_graphs.py
before the relation matcher was tuned; several phrasings per relation, forward and
inverse). No chat model runs: each question goes through ``KnowledgeBase.lookup`` as
``dialoop ask`` would with ``knowledge_answer = "template"`` and ``knowledge_decline``
on, and the reply is scored by the rules of ``dialoop eval kg``:

- accuracy: every gold answer in the reply (unanswerable: the reply declines);
- false decline: a decline where the graph holds the answer;
- invented: no graph reply and no decline, so the model would answer with no
  citation (the issue's "an answer with no citation that is not a decline").
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

from dialoop.config import load_settings
from dialoop.eval.kg import is_correct, is_decline, load_dataset
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.store import open_database

HERE = Path(__file__).resolve().parent
DATASETS = [HERE / "kg_foreign" / "movies", HERE / "kg_foreign" / "companies"]
TYPES = ("1-hop", "2-hop", "3-hop", "constraint", "unanswerable")
TARGETS = {"1-hop": 0.90, "2-hop": 0.80, "3-hop": 0.60, "constraint": 0.80,
           "unanswerable": 0.95}
INVENTED_TARGET = 0.02


def run(dataset: Path, home: Path) -> list[dict[str, object]]:
    """One row per question: type, question, gold, reply, correct, declined, invented."""
    graphs, questions = load_dataset(dataset)
    settings = load_settings(home=home, knowledge_answer="template", knowledge_decline=True)
    db = open_database(settings.resolved_database_url)
    try:
        kb = KnowledgeBase(db, settings)
        for g in graphs:
            kb.import_file(g, user="bench", scope=Scope.everyone())
        rows = []
        for q in questions:
            found = kb.lookup(q.question, user="bench")
            reply = found.reply or ""
            rows.append({"dataset": dataset.name, "type": q.type, "question": q.question,
                         "gold": list(q.answers), "reply": reply,
                         "correct": bool(reply) and is_correct(q, reply),
                         "declined": bool(reply) and is_decline(reply),
                         "invented": not reply})
        return rows
    finally:
        db.close()


def table(rows: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    by_type: dict[str, list[dict[str, object]]] = defaultdict(list)
    for r in rows:
        by_type[str(r["type"])].append(r)
    out = {}
    for t in [t for t in TYPES if t in by_type]:
        rs = by_type[t]
        answerable = t != "unanswerable"
        out[t] = {"n": len(rs), "accuracy": sum(bool(r["correct"]) for r in rs) / len(rs),
                  "false_declines": sum(bool(r["declined"]) for r in rs) if answerable else 0,
                  "invented": sum(bool(r["invented"]) for r in rs)}
    out["all"] = {"n": len(rows), "accuracy": sum(bool(r["correct"]) for r in rows) / len(rows),
                  "false_declines": sum(v["false_declines"] for v in out.values()),
                  "invented": sum(bool(r["invented"]) for r in rows)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="Print JSON (with every failure).")
    ap.add_argument("--failures", action="store_true", help="Print the wrong replies too.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-kg-foreign-") as tmp:
        for d in DATASETS:
            rows += run(d, Path(tmp) / d.name)
    figures = {d.name: table([r for r in rows if r["dataset"] == d.name]) for d in DATASETS}
    figures["both"] = table(rows)
    if args.json:
        print(json.dumps({"figures": figures,
                          "failures": [r for r in rows if not r["correct"]]}, indent=2))
        return
    for name, t in figures.items():
        print(f"\n{name}")
        print(f"{'type':<14}{'n':>4}{'accuracy':>10}{'target':>8}{'false declines':>16}"
              f"{'invented':>10}")
        for kind, f in t.items():
            target = TARGETS.get(kind)
            print(f"{kind:<14}{f['n']:>4}{f['accuracy']:>10.3f}"
                  f"{(f'{target:.2f}' if target else ''):>8}{f['false_declines']:>16}"
                  f"{f['invented']:>10}")
    invented = figures["both"]["all"]["invented"] / figures["both"]["all"]["n"]
    print(f"\ninvented answers: {invented:.3f} of all questions (target ≤ {INVENTED_TARGET})")
    if args.failures:
        for r in rows:
            if not r["correct"]:
                print(f"- [{r['dataset']}/{r['type']}] {r['question']}\n    gold {r['gold']}"
                      f"\n    got  {r['reply'] or '(no graph reply: the model would answer)'}")


if __name__ == "__main__":
    main()
