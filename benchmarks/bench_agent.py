"""Tool use on the bundled model: are calls well-formed, are answers right, what does the
grammar cost?

    python benchmarks/bench_agent.py             # the 50 requests (slow: ~1 min each on 2 cores)
    python benchmarks/bench_agent.py --limit 9   # a quick look (3 of each kind, in turn)

The requests (benchmarks/agent/requests.jsonl, written by hand, not tuned to the model):
20 arithmetic questions with known answers, 10 about the time, date or weekday in a
city (checked against what the current_time tool says when the check runs), and 20
look-ups in the store_support knowledge graph (examples/store_support/knowledge.jsonl,
imported for everyone into a temporary DIALOOP_HOME; answers known from the file). Each
answer is correct if it contains every expected string (digits compared without
thousands separators).

Measured, side by side in one run, greedy decoding:

- **well-formed calls**: of every call generated under the calls grammar (a forced
  call per request, and every call the agent loop makes), the share that parses and
  validates against its tool's schema (target 1.00);
- **correct answers**: plain generation (no tools), the agent loop letting the model
  choose (``first="auto"``), and the agent loop starting with a call
  (``first="required"``);
- **decode speed** with a grammar ÷ without: tokens per second after the first token,
  a forced call under the grammar vs a free answer to the same prompt; median over the
  requests (target >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = ROOT / "benchmarks" / "agent" / "requests.jsonl"
KNOWLEDGE = ROOT / "examples" / "store_support" / "knowledge.jsonl"
USER = "bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, help="run only N requests (taken in turn by kind)")
    ap.add_argument("--max-tokens", type=int, default=64, help="longest answer (default 64)")
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads (default 1: two threads stall each other when "
                         "other work shares the cores, see docs/serving.md)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    os.environ["DIALOOP_HOME"] = str(home)
    from dialoop.agent.builtin import builtin_tools
    from dialoop.agent.tools import ToolRegistry
    from dialoop.config import load_settings
    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
    from dialoop.knowledge import KnowledgeBase
    from dialoop.store import open_database

    settings = load_settings(home=home)
    db = open_database(settings.resolved_database_url)
    kb = KnowledgeBase(db, settings)
    kb.import_file(KNOWLEDGE, user="operator")
    registry = ToolRegistry(builtin_tools(kb))
    engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME, context_window=4096,
                            threads=args.threads)
    requests = _pick([json.loads(line) for line in REQUESTS.read_text().splitlines()],
                     args.limit)
    print(f"{DEFAULT_MODEL_NAME}: {len(requests)} requests, max_tokens {args.max_tokens}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for i, request in enumerate(requests, 1):
        start = time.perf_counter()
        rows.append(_measure(engine, registry, request, args.max_tokens))
        print(f"[{i}/{len(requests)}] {request['kind']:<10} {time.perf_counter() - start:5.1f} s "
              f"{json.dumps(rows[-1]['summary'])}", file=sys.stderr)
    engine.close()
    db.close()
    _table(rows)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def _pick(requests: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The first ``limit`` requests taking the kinds in turn (all of them without a limit)."""
    if limit is None:
        return requests
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in requests:
        kinds.setdefault(r["kind"], []).append(r)
    out: list[dict[str, Any]] = []
    while len(out) < min(limit, len(requests)):
        for group in kinds.values():
            if group and len(out) < limit:
                out.append(group.pop(0))
    return out


def _measure(engine: Any, registry: Any, request: dict[str, Any], max_tokens: int
             ) -> dict[str, Any]:
    from dialoop.agent.calls import FunctionSpec, ToolTurn, with_tools_prompt
    from dialoop.agent.loop import run_agent
    from dialoop.agent.tools import ToolContext
    from dialoop.engine import GenerationParams

    params = GenerationParams(max_tokens=max_tokens)
    messages = [{"role": "user", "content": request["question"]}]
    functions = [FunctionSpec.of_tool(t) for t in registry]
    row: dict[str, Any] = {"kind": request["kind"], "calls": 0, "well_formed": 0}

    forced = ToolTurn(functions, "required")  # one call under the grammar…
    list(forced.stream(engine, messages, GenerationParams(max_tokens=max_tokens)))
    row["calls"] += len(forced.calls) or 1
    row["well_formed"] += len(forced.calls) if not forced.problems else 0
    free = list(engine.stream(with_tools_prompt(messages, functions), params))  # …and without
    row["speed"] = _ratio(forced.usage, free[-1].usage)

    plain = "".join(c.text for c in engine.stream(messages, params))
    row["plain"] = _correct(request, plain)
    for first in ("auto", "required"):
        run = run_agent(engine, messages, params, registry, ToolContext(user=USER),
                        max_steps=2, first=first)
        text = "".join(c.text for c in run)
        row[f"agent_{first}"] = _correct(request, text)
        row[f"steps_{first}"] = len(run.steps)
        unparsed = [p for p in run.problems if not p.startswith("Invalid arguments")
                    and "not a tool" not in p]
        row["calls"] += len(run.steps) + len(unparsed)
        row["well_formed"] += len(run.steps) + len(unparsed) - len(run.problems)
    row["summary"] = {k: row[k] for k in ("plain", "agent_auto", "agent_required",
                                          "steps_auto", "steps_required", "calls",
                                          "well_formed", "speed")}
    return row


def _ratio(grammar: Any, free: Any) -> float | None:
    """Decode speed (tokens/s after the first token) with the grammar ÷ without."""
    def speed(u: Any) -> float | None:
        if u is None or u.first_token_seconds is None or u.completion_tokens < 4:
            return None
        return (u.completion_tokens - 1) / max(u.seconds - u.first_token_seconds, 1e-6)

    a, b = speed(grammar), speed(free)
    return None if a is None or b is None else a / b


def _correct(request: dict[str, Any], answer: str) -> bool:
    text = answer.replace(",", "").lower()
    if request["kind"] == "time":
        from dialoop.agent.builtin import current_time

        now = current_time(request["timezone"])
        want = now[request["field"]]
        if request["field"] == "time":  # the minute may have turned since the answer
            h, m = map(int, want.split(":"))
            earlier = f"{(h - (m == 0)) % 24:02d}:{(m - 1) % 60:02d}"
            return want in text or earlier in text or want.lstrip("0") in text
        return want.lower() in text
    return all(e.replace(",", "").lower() in text for e in request["expect"])


def _table(rows: list[dict[str, Any]]) -> None:
    kinds = sorted({r["kind"] for r in rows})
    print(f"\n{'requests':<14}{'n':>4}{'plain':>8}{'agent auto':>12}{'agent req.':>12}"
          f"{'calls auto':>12}")
    for kind in [*kinds, "all"]:
        group = [r for r in rows if kind in ("all", r["kind"])]

        def share(key: str, group: list[dict[str, Any]] = group) -> str:
            return f"{sum(r[key] for r in group) / len(group):.2f}"

        called = sum(1 for r in group if r["steps_auto"]) / len(group)
        print(f"{kind:<14}{len(group):>4}{share('plain'):>8}{share('agent_auto'):>12}"
              f"{share('agent_required'):>12}{called:>12.2f}")
    calls = sum(r["calls"] for r in rows)
    formed = sum(r["well_formed"] for r in rows)
    ratios = [r["speed"] for r in rows if r["speed"] is not None]
    print(f"\nwell-formed tool calls: {formed}/{calls} = {formed / max(calls, 1):.2f} "
          "(target 1.00)")
    if ratios:
        print(f"decode speed, grammar ÷ none: median {statistics.median(ratios):.2f} over "
              f"{len(ratios)} requests (min {min(ratios):.2f}, max {max(ratios):.2f}; "
              "target >= 0.8)")


if __name__ == "__main__":
    main()
