"""Time to first token over a 20-turn conversation, with and without prefix (KV) reuse.

The whole dialoop path is measured (session store, context building, engine):
the time from ``Assistant.stream()`` to the first piece of the answer. The same
scripted conversation runs on a fresh engine with prefix reuse and on one that
evaluates every prompt from scratch; greedy decoding makes both conversations
identical, so turn 20's prompt is the same ~1.5k tokens in both.

    python benchmarks/bench_multiturn.py [--runs 5] [--threads 2]

Targets: with reuse, TTFT(turn 20) / TTFT(turn 1) ≤ 1.5; TTFT(turn 20) with
reuse / without ≤ 0.2.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

TOPICS = [
    "the history of tea", "how volcanoes form", "the rules of chess", "why the sky is blue",
    "how bread rises", "the life of bees", "how trains work", "the water cycle",
    "what makes music sad", "how to plant tomatoes", "the first computers", "how birds migrate",
    "the tides", "the inside of a cell", "paper making", "how bridges stand",
    "why cats purr", "the northern lights", "the first maps", "how glass is made",
]


def conversation(reuse: bool, threads: int, answer_tokens: int) -> tuple[list[float], int]:
    """Run the scripted conversation; return TTFT per turn and turn 20's prompt tokens."""
    from dialoop.assistant import Assistant
    from dialoop.config import load_settings
    from dialoop.engine import GenerationParams
    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import bundled_gguf
    from dialoop.store import open_database

    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=Path(home))
        engine = LlamaCppEngine(bundled_gguf(), context_window=4096, threads=threads,
                                reuse_prefix=reuse)
        db = open_database(settings.resolved_database_url)
        bot = Assistant(settings, engine, db)
        params = GenerationParams(max_tokens=answer_tokens)
        session = bot.session("bench")
        ttft, prompt_tokens = [], 0
        for i, topic in enumerate(TOPICS, 1):
            started = time.perf_counter()
            stream = bot.stream(f"Turn {i}. In two sentences, tell me about {topic}.",
                                session=session, params=params)
            first = None
            for _ in stream:
                if first is None:
                    first = time.perf_counter() - started
            assert stream.reply is not None and first is not None
            ttft.append(first)
            prompt_tokens = stream.reply.usage.prompt_tokens
        db.close()
        engine.close()
    return ttft, prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--answer-tokens", type=int, default=55)
    args = parser.parse_args()

    with_reuse: list[list[float]] = []
    without: list[list[float]] = []
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        ttft, tokens = conversation(True, args.threads, args.answer_tokens)
        with_reuse.append(ttft)
        ttft_cold, tokens_cold = conversation(False, args.threads, args.answer_tokens)
        without.append(ttft_cold)
        assert tokens == tokens_cold, "the two conversations diverged"

    def median_at(runs: list[list[float]], turn: int) -> float:
        return statistics.median(r[turn - 1] for r in runs)

    t1, t20 = median_at(with_reuse, 1), median_at(with_reuse, 20)
    c20 = median_at(without, 20)
    print(f"machine: {platform.machine()}, {args.threads} threads; median of {args.runs} runs")
    print(f"turn 20 prompt: {tokens} tokens\n")
    print(f"{'turn':>5}{'TTFT reuse (ms)':>18}{'TTFT no reuse (ms)':>21}")
    for turn in (1, 5, 10, 15, 20):
        print(f"{turn:>5}{median_at(with_reuse, turn) * 1000:>18.1f}"
              f"{median_at(without, turn) * 1000:>21.1f}")
    print()
    print(f"TTFT turn 20 / turn 1 (reuse):      {t20 / t1:.2f}   (target <= 1.5)")
    print(f"TTFT turn 20 reuse / no reuse:      {t20 / c20:.3f}  (target <= 0.2)")


if __name__ == "__main__":
    main()
