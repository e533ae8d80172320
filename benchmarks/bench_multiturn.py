"""Time to first token over a 20-turn conversation, with and without prefix (KV) reuse.

The whole dialoop path is measured (session store, context building, engine):
the time from ``Assistant.stream()`` to the first piece of the answer. A scripted
20-turn conversation runs on a fresh engine with prefix reuse; then an engine that
evaluates every prompt from scratch answers the same turns with the same history
(the first run's answers), so turn 20's prompt is the same ~1.5k tokens in both.

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


TURNS = (1, 5, 10, 15, 20)


def _open(home: str, threads: int, reuse: bool):  # type: ignore[no-untyped-def]
    from dialoop.assistant import open_assistant
    from dialoop.config import load_settings
    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import bundled_gguf

    settings = load_settings(home=Path(home))
    engine = LlamaCppEngine(bundled_gguf(), context_window=4096, threads=threads,
                            reuse_prefix=reuse)
    return open_assistant(settings, engine=engine)


def _first_token(bot, message: str, session, answer_tokens: int):  # type: ignore[no-untyped-def]
    """Seconds from ``stream()`` to the first piece, and the stored reply."""
    from dialoop.engine import GenerationParams

    started = time.perf_counter()
    stream = bot.stream(message, session=session,
                        params=GenerationParams(max_tokens=answer_tokens))
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter() - started
    assert stream.reply is not None and first is not None
    return first, stream.reply


def _message(i: int) -> str:
    return f"Turn {i}. In two sentences, tell me about {TOPICS[i - 1]}."


def with_reuse(threads: int, answer_tokens: int) -> tuple[list[float], list[int], list[str]]:
    """The scripted conversation with prefix reuse: TTFT, prompt tokens and answer per turn."""
    with tempfile.TemporaryDirectory() as home:
        bot = _open(home, threads, reuse=True)
        session = bot.session("bench")
        ttft, tokens, answers = [], [], []
        for i in range(1, len(TOPICS) + 1):
            first, reply = _first_token(bot, _message(i), session, answer_tokens)
            ttft.append(first)
            tokens.append(reply.usage.prompt_tokens)
            answers.append(reply.text)
        bot.close()
        bot.engine.close()  # not owned by the assistant: it was passed in
    return ttft, tokens, answers


def without_reuse(threads: int, answer_tokens: int, answers: list[str]
                  ) -> dict[int, tuple[float, int]]:
    """TTFT of each turn in TURNS with every prompt evaluated from scratch.

    Greedy answers can differ by a token between a cached and an uncached evaluation
    (different batch shapes round differently), so the history is not regenerated:
    each measured turn gets the reuse run's own earlier answers, which makes its
    prompt identical token for token.
    """
    out = {}
    with tempfile.TemporaryDirectory() as home:
        bot = _open(home, threads, reuse=False)
        for turn in TURNS:
            session = bot.session(f"cold-{turn}")
            for i in range(1, turn):
                bot.parts.sessions.add_turn(session, "user", _message(i))
                bot.parts.sessions.add_turn(session, "assistant", answers[i - 1])
            first, reply = _first_token(bot, _message(turn), session, answer_tokens)
            out[turn] = (first, reply.usage.prompt_tokens)
        bot.close()
        bot.engine.close()  # not owned by the assistant: it was passed in
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--answer-tokens", type=int, default=55)
    args = parser.parse_args()

    warm: list[list[float]] = []
    cold: list[dict[int, tuple[float, int]]] = []
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        ttft, tokens, answers = with_reuse(args.threads, args.answer_tokens)
        warm.append(ttft)
        cold.append(without_reuse(args.threads, args.answer_tokens, answers))
        for turn in TURNS:
            assert cold[-1][turn][1] == tokens[turn - 1], "the prompts differ"

    def warm_at(turn: int) -> float:
        return statistics.median(r[turn - 1] for r in warm)

    def cold_at(turn: int) -> float:
        return statistics.median(r[turn][0] for r in cold)

    t1, t20, c20 = warm_at(1), warm_at(20), cold_at(20)
    print(f"machine: {platform.machine()}, {args.threads} threads; median of {args.runs} runs")
    print(f"turn 20 prompt: {tokens[-1]} tokens\n")
    print(f"{'turn':>5}{'prompt tokens':>15}{'TTFT reuse (ms)':>18}{'TTFT no reuse (ms)':>21}")
    for turn in TURNS:
        print(f"{turn:>5}{tokens[turn - 1]:>15}{warm_at(turn) * 1000:>18.1f}"
              f"{cold_at(turn) * 1000:>21.1f}")
    print()
    print(f"TTFT turn 20 / turn 1 (reuse):      {t20 / t1:.2f}   (target <= 1.5)")
    print(f"TTFT turn 20 reuse / no reuse:      {t20 / c20:.3f}  (target <= 0.2)")


if __name__ == "__main__":
    main()
