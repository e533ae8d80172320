"""Ratings teach: a scripted user rates answers by a rule, consolidation trains the style
adapter on the thumbs (KTO), and the disliked behaviour is measured on held-out prompts.

The user: **dislikes answers that open with an apology** ("I'm sorry for any
inconvenience, but as a chatbot …"), likes the rest. A person could have that rule, the
bundled 135M model breaks it on about half of banking questions, and it shows in an
answer's first words.

Prompts: BANKING77 customer questions (../shared/data/banking77, CC BY 4.0; read from
there, never copied here), shuffled with ``--seed``. The first ``max(--ratings)`` are
asked and rated; the next ``--heldout`` are never rated, only measured.

The path is the one a user takes: the user chats with the assistant (``Assistant.ask``,
so from the second checkpoint on the adapter that serves them answers), rates each
answer with ``LearningLoop.rate`` into a real SQLite database, and at each checkpoint
of ``--ratings`` a consolidation run (``LearningLoop.consolidate``: the worker, the
pipeline, KTO, the GGUF export, the gate at its default thresholds) makes a version of
their line with a style part. Each version is measured, promoted or not, on a second
llama.cpp engine loaded with the version's style part, which answers where its router
sends the prompt, as it serves (greedy, ``EVAL_TOKENS`` tokens):

- disliked: the share of held-out answers the rule dislikes, base vs the version;
- locality: the gate's own probes (``--probes`` unrelated prompts after the style
  part's anchors; the gate stores both figures): *identical* — the greedy reply is the
  start of the base model's answer, character for character — and *same* (the gate's
  rule: the replies agree word for word over their common length, up to a small edit
  ratio).

    flock /tmp/dialoop-bench.lock python benchmarks/bench_ratings.py [--ratings 50 100 200]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"
USER = "rater"
LINE = f"user:{USER}"
ANSWER_TOKENS = 48  # what the user reads and rates
EVAL_TOKENS = 24  # the rule shows in the first words
_APOLOGY = re.compile(r"\b(sorry|apologi[sz]e|apologies)\b")


def disliked(answer: str) -> bool:
    """The scripted user's rule: an answer that opens with an apology (in its first eight
    words) is a bad answer."""
    return bool(_APOLOGY.search(" ".join(answer.lower().split()[:8])))


def load_prompts(seed: int) -> list[str]:
    if not BANKING77.is_dir():
        raise SystemExit(f"{BANKING77} is missing: put ../shared beside the project.")
    texts: list[str] = []
    for name in ("test.csv", "train.csv"):
        with (BANKING77 / "banking_data" / name).open(encoding="utf-8") as f:
            texts += [row["text"].strip() for row in csv.DictReader(f)]
    unique = sorted(set(texts))
    random.Random(seed).shuffle(unique)
    return unique


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        from dialoop.assistant import open_assistant
        from dialoop.config import load_settings
        from dialoop.engine.adapters import LoadedAdapters
        from dialoop.engine.llamacpp import LlamaCppEngine
        from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
        from dialoop.learn.pipeline import STYLE_ANCHORS

        self.args = args
        prompts = load_prompts(args.seed)
        self.rated_prompts = prompts[: max(args.ratings)]
        self.heldout = prompts[max(args.ratings): max(args.ratings) + args.heldout]
        self.home = Path(tempfile.mkdtemp(prefix="bench-ratings-"))
        # The gate's first STYLE_ANCHORS replay prompts anchor the style part; the next
        # --probes are its locality probes.
        self.settings = load_settings(home=self.home, max_tokens=ANSWER_TOKENS, knowledge=False,
                                      admin_users=[USER],
                                      learn_gate_probes=STYLE_ANCHORS + args.probes)
        # One thread each: on a 2-core machine the other core is the consolidation's.
        self.engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME,
                                     context_window=1024, threads=1)
        self.bot = open_assistant(self.settings, engine=self.engine)
        self.learning = self.bot.parts.learning
        self.store = self.bot.parts.adapters
        self.judge = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME, context_window=1024,
                                    threads=1, prefix_cache_bytes=0)
        self.slots = LoadedAdapters(self.judge,
                                    lambda part: self.store.locate(part, self.judge.kind))
        self.results: dict[str, Any] = {"rule": "opens with an apology", "rows": []}
        self.rated = 0

    def answer(self, prompt: str, adapter: str | None) -> str:
        from dialoop.learn.replay import generate

        with self.slots.use(adapter) as key:
            return generate(self.judge, prompt, max_tokens=EVAL_TOKENS, adapter=key)

    def disliked_rate(self, row: Any = None) -> tuple[float, float]:
        """The share of held-out answers disliked, by the base model (``row`` None) or as
        version ``row``'s style part serves them (its router decides); the share routed."""
        style = [row is not None and self.learning.style_routes(row, p) for p in self.heldout]
        bad = sum(disliked(self.answer(p, f"{row.key}#style" if routed else None))
                  for p, routed in zip(self.heldout, style, strict=True))
        return bad / len(self.heldout), sum(style) / len(self.heldout)

    def go(self) -> None:
        start = time.perf_counter()
        base, _ = self.disliked_rate()
        print(f"base model: {base:.0%} of {len(self.heldout)} held-out answers disliked "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        self.results["base_disliked"] = base
        for n in self.args.ratings:
            self.rate_up_to(n)
            self.results["rows"].append(self.consolidate(n, base))
        self.results["history"] = self.learning.history(user=USER, line=LINE)
        self.print_table(base)

    def rate_up_to(self, n: int) -> None:
        """The user asks the next prompts, reads each answer, and rates it by the rule."""
        start, bad = time.perf_counter(), 0
        for prompt in self.rated_prompts[self.rated: n]:
            reply = self.bot.ask(prompt, user=USER)
            bad += disliked(reply.text)
            self.learning.rate(reply.turn_id, -1 if disliked(reply.text) else 1, user=USER)
        print(f"rated {n - self.rated} more answers ({bad} disliked) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        self.rated = n

    def consolidate(self, n: int, base: float) -> dict[str, Any]:
        start = time.perf_counter()
        run = self.learning.consolidate(user=USER)
        seconds = time.perf_counter() - start
        if run.status != "done":
            raise SystemExit(f"consolidation failed: {run.error}")
        line = run.report["lines"][LINE]
        gate, style = line["gate"], line["style"]
        row = self.store.get(LINE, line["version"])
        disliked_after, routed = self.disliked_rate(row)
        out = {
            "ratings": n, "version": row.key, "outcome": line["outcome"],
            "trained_on": style["desirable"] + style["undesirable"],
            "liked": style["desirable"], "disliked_after": disliked_after,
            "heldout_routed": routed,
            "probes_routed": gate["counts"]["style_locality_routed"],
            "drop": (base - disliked_after) / base if base else None,
            "locality_identical": gate["metrics"]["style_identical"],
            "locality_same": gate["metrics"]["style_locality"],
            "rated_behaviour": gate["metrics"]["rated_behaviour"],
            "held_out_ratings": gate["counts"]["rated_held_out"],
            "probes": gate["counts"]["style_locality"],
            "train_seconds": style["seconds"], "gate_seconds": gate["seconds"],
            "run_seconds": round(seconds, 1), "failed": gate["failed"],
        }
        print(json.dumps(out), flush=True)
        return out

    def print_table(self, base: float) -> None:
        print()
        print(f"Rule: dislikes answers that open with an apology. Held-out prompts: "
              f"{len(self.heldout)} BANKING77 questions never rated; locality: "
              f"{self.args.probes} unrelated prompts (the gate's).")
        print("| ratings | version | disliked (held out) | drop | held out routed | "
              "locality identical | locality same (gate) | probes routed | "
              "rated behaviour (gate) | training | run | gate |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        print(f"| 0 | base | {base:.2f} | – | – | 1.00 | 1.00 | – | – | – | – | – |")
        for r in self.results["rows"]:
            drop = f"{r['drop']:.0%}" if r["drop"] is not None else "–"
            verdict = r["outcome"] + (f" ({', '.join(r['failed'])})" if r["failed"] else "")
            behaviour = (f"{r['rated_behaviour']:.2f} ({r['held_out_ratings']})"
                         if r["rated_behaviour"] is not None else "–")
            print(f"| {r['ratings']} ({r['trained_on']} trained, {r['liked']} liked) | "
                  f"{r['version']}#style | {r['disliked_after']:.2f} | {drop} | "
                  f"{r['heldout_routed']:.2f} | {r['locality_identical']:.2f} | "
                  f"{r['locality_same']:.2f} | {r['probes_routed']} | {behaviour} | "
                  f"{r['train_seconds']:.0f} s | {r['run_seconds']:.0f} s | {verdict} |")
        print("\nSatisfaction per version (the user's ratings of the answers it gave):")
        for h in self.results["history"]:
            sat = f"{h['satisfaction']:.0%}" if h["satisfaction"] is not None else "–"
            print(f"  {h['key']}: {h['status']}, style part {h['style']}, "
                  f"{h['ratings']} ratings (a quarter held out), satisfaction {sat}")
        if self.args.json:
            self.args.json.write_text(json.dumps(self.results, indent=1, default=str))

    def close(self) -> None:
        self.bot.close()
        self.engine.close()
        self.judge.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratings", type=int, nargs="+", default=[50, 100, 200],
                    help="Checkpoints: consolidate after this many ratings in all.")
    ap.add_argument("--heldout", type=int, default=80, help="Held-out prompts measured.")
    ap.add_argument("--probes", type=int, default=100,
                    help="Unrelated prompts the gate checks the style part's locality on.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args()
    args.ratings = sorted(set(args.ratings))
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; ratings {args.ratings}, held out {args.heldout}, "
          f"seed {args.seed}", flush=True)
    run = Run(args)
    try:
        run.go()
    finally:
        run.close()


if __name__ == "__main__":
    main()
