"""Long conversations: early facts still answered at the end, with drop vs summarize.

Scripted 50-turn conversations: five facts stated in the first turns (a name, an order
number, a city, a preference, a date), 40 filler turns (questions on other topics and
remarks about the user's day), then five questions about the early facts. They run
through the real Assistant with the bundled model and a context window small enough
that the early turns fall out of it. For each way of handling the overflow:

- ``drop``: older exchanges are dropped (the behaviour before issue 19);
- ``summarize/model``: what is dropped is summarised by the model itself;
- ``summarize/extractive``: by the user's fact-stating sentences, kept verbatim;
- ``whole`` (the ceiling, ``--no-ceiling`` to skip): a window that holds everything,

it prints the share of the early facts answered correctly at the end (the answer
contains the fact), the share the summary in force at the end still holds, and the
time per turn.

    python benchmarks/bench_summary.py [--conversations 5] [--window 1024] [--threads 1]
                                       [--model OTHER.gguf]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TURNS = 50
NAMES = ["Marisol Quint", "Tobias Wren", "Anika Farrow", "Dmitri Osei", "Helga Brandt",
         "Ravi Chandran", "Lucia Moretti", "Kenji Sato", "Ingrid Holm", "Omar Haddad"]
CITIES = ["Lisbon", "Tallinn", "Porto", "Krakow", "Ghent", "Bergen", "Dunedin", "Valencia",
          "Utrecht", "Galway"]
PREFERENCES = [("window seats", "window"), ("green tea", "green tea"),
               ("paperback books", "paperback"), ("vegetarian meals", "vegetarian"),
               ("morning deliveries", "morning"), ("email receipts", "email"),
               ("dark chocolate", "chocolate"), ("aisle seats", "aisle")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
TOPICS = [
    "the history of tea", "how volcanoes form", "the rules of chess", "why the sky is blue",
    "how bread rises", "the life of bees", "how trains work", "the water cycle",
    "what makes music sad", "how to plant tomatoes", "the first computers",
    "how birds migrate", "the tides", "the inside of a cell", "paper making",
    "how bridges stand", "why cats purr", "the northern lights", "the first maps",
    "how glass is made", "how clouds form", "the speed of sound", "how magnets work",
    "why leaves change colour", "how coffee is roasted", "the moon's phases",
    "how rainbows appear", "why the sea is salty", "how owls hunt", "how soap cleans",
    "the life of ants", "how kites fly", "why bread goes stale", "how snow forms",
    "how whales sing", "the oldest trees", "how compasses work", "why we yawn",
    "how cheese is made", "how lighthouses work",
]
REMARKS = ["I had a long walk this morning.", "It rained all day here.",
           "I am a bit tired today.", "We cooked pasta for dinner.",
           "I finished a good book last night.", "The weather is nice today."]


@dataclass(frozen=True)
class Fact:
    statement: str
    question: str
    answers: tuple[str, ...]  # any of these in the answer (lower case) counts as correct


def conversation(seed: int) -> tuple[list[str], list[Fact]]:
    """A 50-turn script: the user's messages, and the five facts stated early."""
    rng = random.Random(seed)
    name = rng.choice(NAMES)
    order = f"{rng.choice('ABCDEKMPRT')}-{rng.randint(10000, 99999)}"
    city = rng.choice(CITIES)
    preference, key = rng.choice(PREFERENCES)
    month, day = rng.choice(MONTHS), rng.randint(2, 28)
    facts = [
        Fact(f"Hi, my name is {name}.", "What is my name?",
             (name.split()[0].lower(),)),
        Fact(f"My order number is {order}, it has not arrived yet.",
             "What is my order number?", (order.lower(), order[2:])),
        Fact(f"I live in {city}.", "Which city do I live in?", (city.lower(),)),
        Fact(f"I prefer {preference}.", "What do I prefer?", (key,)),
        Fact(f"My appointment is on {month} {day}.", "When is my appointment?",
             (f"{month.lower()} {day}", f"{day} {month.lower()}")),
    ]
    filler_count = TURNS - 2 * len(facts)
    topics = rng.sample(TOPICS, filler_count)
    filler = [rng.choice(REMARKS) + f" In one sentence, tell me about {t}." if i % 4 == 3
              else f"In one sentence, tell me about {t}." for i, t in enumerate(topics)]
    early = [f.statement for f in facts]
    questions = [f.question for f in rng.sample(facts, len(facts))]
    messages = early + filler + questions
    asked = [next(f for f in facts if f.question == q) for q in questions]
    return messages, asked


@dataclass
class Result:
    correct: int = 0
    asked: int = 0
    in_summary: int = 0
    seconds: float = 0.0
    turns: int = 0
    summaries: int = 0
    summary_seconds: float = 0.0
    dropped_turns: list[int] | None = None


def run_mode(engine, overflow: str, kind: str, seeds: list[int],  # type: ignore[no-untyped-def]
             answer_tokens: int) -> Result:
    """Every conversation of ``seeds`` through a fresh assistant on ``engine``."""
    import sqlalchemy as sa

    from dialoop.assistant import open_assistant
    from dialoop.config import load_settings
    from dialoop.dialogue.summary import Summaries
    from dialoop.engine import GenerationParams
    from dialoop.store.summaries import ContextSummary

    result = Result(dropped_turns=[])
    params = GenerationParams(temperature=0.0, max_tokens=answer_tokens, repeat_penalty=1.1)
    for seed in seeds:
        messages, facts = conversation(seed)
        with tempfile.TemporaryDirectory() as home:
            settings = load_settings(
                home=Path(home), context_overflow=overflow, context_summarizer=kind,
                learn_memory=False, knowledge=False)
            bot = open_assistant(settings, engine=engine)
            session = bot.session(f"bench-{seed}")
            answers = []
            for text in messages:
                started = time.perf_counter()
                reply = bot.ask(text, session=session, params=params)
                result.seconds += time.perf_counter() - started
                result.turns += 1
                answers.append(reply.text)
            result.dropped_turns.append(reply.prompt.dropped // 2)
            for fact, answer in zip(facts, answers[-len(facts):], strict=True):
                result.asked += 1
                result.correct += any(a in answer.lower() for a in fact.answers)
            summary = Summaries(bot.parts.db).latest(session.id, kind)
            if summary is not None:
                result.in_summary += sum(any(a in summary.text.lower() for a in f.answers)
                                         for f in facts)
            with bot.parts.db.read() as s:
                made = s.scalars(sa.select(ContextSummary.seconds).where(
                    ContextSummary.session_id == session.id)).all()
            result.summaries += len(made)
            result.summary_seconds += sum(made)
            bot.close()
        print(f"    conversation {seed}: {result.correct}/{result.asked} answered so far",
              flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--window", type=int, default=1024,
                        help="Context window of the small-window modes (tokens).")
    parser.add_argument("--answer-tokens", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-ceiling", action="store_true",
                        help="Skip the run with a window that holds the whole conversation.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path,
                        help="A GGUF file to measure instead of the bundled model.")
    args = parser.parse_args()

    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import bundled_gguf

    seeds = [args.seed + i for i in range(args.conversations)]
    # (label, context_overflow, context_summarizer, window)
    modes = [("drop", "drop", "extractive", args.window),
             ("summarize/model", "summarize", "model", args.window),
             ("summarize/extractive", "summarize", "extractive", args.window)]
    if not args.no_ceiling:
        modes.append(("whole", "drop", "extractive", 8192))
    print(f"machine: {platform.machine()}, {args.threads} thread(s); {args.conversations} "
          f"conversations of {TURNS} turns, 5 early facts each; window {args.window} tokens "
          f"(whole: 8192), answers of at most {args.answer_tokens} tokens")
    rows = []
    for mode, overflow, kind, window in modes:
        engine = LlamaCppEngine(args.model or bundled_gguf(), context_window=window,
                                threads=args.threads)
        started = time.perf_counter()
        r = run_mode(engine, overflow, kind, seeds, args.answer_tokens)
        engine.close()
        rows.append((mode, r))
        print(f"  {mode}: done in {time.perf_counter() - started:.0f} s", flush=True)
    print()
    print(f"{'mode':<22} {'facts answered':>15} {'in summary':>11} {'s/turn':>7} "
          f"{'summaries':>9} {'s/summary':>9} {'turns dropped':>13}")
    for mode, r in rows:
        share = f"{r.correct}/{r.asked} {r.correct / r.asked:4.0%}"
        held = (f"{r.in_summary / r.asked:.0%}" if mode.startswith("summarize") else "-")
        per = f"{r.summary_seconds / r.summaries:.2f}" if r.summaries else "-"
        dropped = statistics.mean(r.dropped_turns or [0])
        print(f"{mode:<22} {share:>15} {held:>11} {r.seconds / r.turns:7.2f} "
              f"{r.summaries / len(seeds):9.1f} {per:>9} {dropped:13.1f}")


if __name__ == "__main__":
    main()
