"""Knowledge graph at scale: import 1,000,000 triples into SQLite, then 2-hop latency,
side by side with rdflib's in-memory graph and NetworkX.

    flock /tmp/dialoop-bench.lock python benchmarks/bench_knowledge.py [--triples N]

The graph: people (type, employer, birthplace, age, six acquaintances), companies
(type, city, founding year) and cities (type, country). The 2-hop query is "the city
of the employer of person P", run for 1,000 random people:

- dialoop: the recursive-CTE walk the reasoner uses (``graph.walk``), scoped to a
  user, on the SQLite file just imported;
- rdflib: ``Graph.objects`` twice on the same triples in memory;
- NetworkX: a MultiDiGraph with the relation as edge key, successors filtered twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import networkx as nx
import rdflib

from dialoop.config import load_settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.traversal import walk
from dialoop.store import open_database

log = logging.getLogger("bench_knowledge")


def generate(path: Path, total: int, seed: int = 7) -> tuple[int, list[tuple[str, str, object]]]:
    """Write ``total`` triples as JSONL; return the people count and the entity triples."""
    rnd = random.Random(seed)
    n_people = total // 11
    n_companies, n_cities = max(n_people // 10, 1), max(n_people // 100, 1)
    edges: list[tuple[str, str, object]] = []
    rows: list[str] = []

    def fact(s: str, r: str, o: str) -> None:
        rows.append(json.dumps({"subject": s, "relation": r, "object": o}))
        edges.append((s, r, o))

    def value(s: str, r: str, v: int) -> None:
        rows.append(json.dumps({"subject": s, "relation": r, "value": v}))

    for c in range(n_cities):
        fact(f"city{c}", "type", "City")
        fact(f"city{c}", "country", f"country{c % 50}")
    for c in range(n_companies):
        fact(f"company{c}", "type", "Company")
        fact(f"company{c}", "city", f"city{rnd.randrange(n_cities)}")
        value(f"company{c}", "founded", rnd.randrange(1850, 2024))
    for p in range(n_people):
        if len(rows) >= total:
            break
        fact(f"person{p}", "type", "Person")
        fact(f"person{p}", "employer", f"company{rnd.randrange(n_companies)}")
        fact(f"person{p}", "birthplace", f"city{rnd.randrange(n_cities)}")
        value(f"person{p}", "age", rnd.randrange(18, 90))
        for _ in range(6):
            fact(f"person{p}", "knows", f"person{rnd.randrange(n_people)}")
    rows = list(dict.fromkeys(rows))  # "knows" can repeat: keep triples distinct
    seen = set(rows)
    while len(rows) < total:  # top up with more acquaintances
        s, o = rnd.randrange(n_people), rnd.randrange(n_people)
        row = json.dumps({"subject": f"person{s}", "relation": "knows", "object": f"person{o}"})
        if row not in seen:
            seen.add(row)
            rows.append(row)
            edges.append((f"person{s}", "knows", f"person{o}"))
    path.write_text("\n".join(rows[:total]) + "\n", encoding="utf-8")
    return n_people, edges


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[94] * 1000  # p50, p95 in ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triples", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}, sqlite {__import__('sqlite3').sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="bench-kg-") as tmp:
        data = Path(tmp) / "graph.jsonl"
        t = time.perf_counter()
        n_people, edges = generate(data, args.triples)
        print(f"generated {args.triples:,} triples in {time.perf_counter() - t:.1f} s "
              f"({data.stat().st_size / 2**20:.0f} MiB JSONL)")

        settings = load_settings(home=Path(tmp) / "home")
        db = open_database(settings.resolved_database_url)
        kb = KnowledgeBase(db, settings)
        t, cpu = time.perf_counter(), time.process_time()
        result = kb.import_file(data, user="bench", scope=Scope.everyone())
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(p.stat().st_size for p in (Path(tmp) / "home").glob("dialoop.db*"))
        print(f"dialoop import: {result.added:,} triples in {seconds:.1f} s "
              f"({result.added / seconds:,.0f}/s; target ≤ 60 s; {cpu:.1f} s of CPU time); "
              f"database {size / 2**20:.0f} MiB")

        rnd = random.Random(1)
        people = [f"person{rnd.randrange(n_people)}" for _ in range(args.queries)]
        g = kb.graph
        employer, city = g.relation_id("employer"), g.relation_id("city")
        ids = {p: g.entity_by_key(p).id for p in people}
        lat, answers = [], {}
        for p in people:
            t = time.perf_counter()
            paths = walk(g, [ids[p]], [employer, city], "someone", max_hops=2)
            lat.append(time.perf_counter() - t)
            answers[p] = {q.end for q in paths if len(q.hops) == 2}
        assert all(len(a) == 1 for a in answers.values()), "every person has one employer city"
        p50, p95 = percentiles(lat)
        print(f"dialoop 2-hop (recursive SQL, SQLite file): p50 {p50:.2f} ms, p95 {p95:.2f} ms "
              "(target p95 ≤ 20 ms)")
        db.close()

        t = time.perf_counter()
        rg = rdflib.Graph()
        ns = rdflib.Namespace("urn:x:")
        for s, r, o in edges:
            rg.add((ns[s], ns[r], ns[str(o)]))
        print(f"rdflib load (entity triples only, {len(rg):,}): {time.perf_counter() - t:.1f} s")
        lat = []
        for p in people:
            t = time.perf_counter()
            found = {c for e in rg.objects(ns[p], ns.employer) for c in rg.objects(e, ns.city)}
            lat.append(time.perf_counter() - t)
            assert len(found) == 1
        p50, p95 = percentiles(lat)
        print(f"rdflib 2-hop (in memory): p50 {p50:.3f} ms, p95 {p95:.3f} ms")
        del rg

        t = time.perf_counter()
        nx_graph = nx.MultiDiGraph()
        nx_graph.add_edges_from((s, str(o), r) for s, r, o in edges)
        print(f"networkx load ({nx_graph.number_of_edges():,} edges): "
              f"{time.perf_counter() - t:.1f} s")
        lat = []
        for p in people:
            t = time.perf_counter()
            found = {c for _, e, k in nx_graph.out_edges(p, keys=True) if k == "employer"
                     for _, c, k2 in nx_graph.out_edges(e, keys=True) if k2 == "city"}
            lat.append(time.perf_counter() - t)
            assert len(found) == 1
        p50, p95 = percentiles(lat)
        print(f"networkx 2-hop (in memory): p50 {p50:.3f} ms, p95 {p95:.3f} ms")


if __name__ == "__main__":
    main()
