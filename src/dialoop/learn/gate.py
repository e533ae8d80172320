"""The gate: a candidate adapter serves only if it is measured to be better and no worse.

It runs the candidate exactly as it would serve: its router decides, per prompt,
whether the adapter answers (the GGUF form on llama.cpp, greedy, without the
correction memory) or the base model does. On prompts that were not trained on:

- **reliability**: each taught question gets the taught answer;
- **generalization**: held-out rewordings of each question get it too;
- **locality**: hundreds of probes — unrelated prompts, the taught question about
  another name (*near*), other questions about the taught names (*siblings*) — are
  answered as the base model answers them (a near question must not receive the
  taught answer). A probe the router sends to the base model *is* answered by the base
  model, so it holds by construction and is not generated; the report counts how many
  probes were routed to the adapter and judged;
- **earlier lessons**: lessons the previous version of the line already held still hold.

With many lessons, reliability and generalization are measured on an even sample of
``sample`` lessons (all of them below that).

"Gets the taught answer" means the answer's key terms (its names and numbers, else
its content words) all appear in the reply. "Answered as the base answered" means
the replies agree word for word over their common length, up to a small edit ratio.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dialoop.engine import Engine
from dialoop.learn.memory import key_terms, named, terms_present
from dialoop.learn.replay import generate

__all__ = [
    "GateReport",
    "GateThresholds",
    "Probe",
    "answer_holds",
    "evaluate",
    "near_variants",
    "probes_for",
    "same_answer",
    "sibling_questions",
]

GATE_MAX_TOKENS = 24  # a taught answer shows in its first words
MAX_FAILURES_KEPT = 12  # per metric, in the stored report
SAME_RATIO = 0.8
_WORD = re.compile(r"[^\W_][\w'’-]*")
# A stand-in name for near questions: "Who is the CEO of Acme Biotech?" → "… of Acme Northwind?"
_OTHER_NAMES = ("Northwind", "Brackenridge", "Quillfeather")


@dataclass(frozen=True)
class GateThresholds:
    reliability: float = 0.9
    generalization: float = 0.7
    locality: float = 0.95

    def to_dict(self) -> dict[str, float]:
        return {"reliability": self.reliability, "generalization": self.generalization,
                "locality": self.locality}


@dataclass
class GateReport:
    metrics: dict[str, float | None]
    counts: dict[str, int]
    thresholds: GateThresholds
    failures: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed_checks(self) -> list[str]:
        t = self.thresholds
        need = {"reliability": t.reliability, "generalization": t.generalization,
                "locality": t.locality, "earlier_lessons": t.reliability}
        return [name for name, bar in need.items()
                if (value := self.metrics.get(name)) is not None and value < bar]

    @property
    def passed(self) -> bool:
        return not self.failed_checks

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed_checks, "metrics": self.metrics,
                "counts": self.counts, "thresholds": self.thresholds.to_dict(),
                "failures": self.failures, "seconds": round(self.seconds, 2)}


def answer_holds(taught: str, reply: str) -> bool:
    """Whether ``reply`` gives the taught answer (all its key terms appear)."""
    terms = key_terms(taught)
    return bool(terms) and terms_present(terms, reply)


def same_answer(base: str, reply: str) -> bool:
    """Whether two replies agree over their common length (greedy replies may stop early)."""
    a, b = _words(base), _words(reply)
    n = min(len(a), len(b))
    if n == 0:
        return len(a) == len(b)
    return difflib.SequenceMatcher(None, a[:n], b[:n]).ratio() >= SAME_RATIO


def near_variants(question: str) -> list[str]:
    """The question about another name: its last capitalized key term swapped for a stand-in."""
    words = [m for m in re.finditer(_WORD, question) if m.group()[0].isupper() and m.start() > 0]
    if not words:
        return []
    last = words[-1]
    other = next(n for n in _OTHER_NAMES if n.lower() != last.group().lower())
    return [question[: last.start()] + other + question[last.end():]]


@dataclass(frozen=True)
class Probe:
    """A locality prompt: ``near`` ones must not get ``taught``; the others must get the
    base model's own answer."""

    prompt: str
    kind: str  # "unrelated" | "near" | "sibling"
    taught: str | None = None


def evaluate(
    engine: Engine,
    adapter: str,
    *,
    route: Callable[[str], bool],
    base: Callable[[str], str],
    lessons: Sequence[Any],
    held_out: dict[int, list[str]],
    probes: Sequence[Probe],
    earlier: set[int],
    thresholds: GateThresholds,
    sample: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> GateReport:
    """Judge the adapter loaded in ``engine`` as ``adapter``, served behind ``route``.

    ``lessons`` have id, question, answer, kind; ``held_out`` maps a lesson id to
    rewordings not trained on; ``base(prompt)`` is the base model's answer (cached by the
    caller); ``earlier`` holds the ids of lessons the line's previous version held.
    """
    start = time.perf_counter()
    taught = _even_sample([x for x in lessons if x.kind == "correction"], sample)
    checks: list[tuple[str, str, Callable[[str], bool], str]] = []  # metric, prompt, ok, want
    for x in taught:
        holds = _holds(x.answer)
        checks.append(("reliability", x.question, holds, x.answer))
        if x.id in earlier:
            checks.append(("earlier_lessons", x.question, holds, x.answer))
        checks += [("generalization", q, holds, x.answer) for q in held_out.get(x.id, [])]
    counts: dict[str, int] = {}
    passed: dict[str, int] = {}
    failures: dict[str, list[dict[str, str]]] = {}

    def record(metric: str, ok: bool, prompt: str, reply: str, want: str) -> None:
        counts[metric] = counts.get(metric, 0) + 1
        passed[metric] = passed.get(metric, 0) + ok
        if not ok and len(failures.setdefault(metric, [])) < MAX_FAILURES_KEPT:
            failures[metric].append({"prompt": prompt, "reply": reply, "expected": want})

    routed_probes = [p for p in probes if route(p.prompt)]
    total = len(checks) + len(routed_probes)
    for i, (metric, prompt, ok, want) in enumerate(checks):
        reply = generate(engine, prompt, max_tokens=GATE_MAX_TOKENS,
                         adapter=adapter if route(prompt) else None)
        record(metric, ok(reply), prompt, reply, want)
        if progress is not None:
            progress(i + 1, total)
    for i, probe in enumerate(routed_probes, len(checks)):
        reply = generate(engine, probe.prompt, max_tokens=GATE_MAX_TOKENS, adapter=adapter)
        if probe.kind == "near":
            ok, want = not answer_holds(probe.taught or "", reply), f"anything but {probe.taught}"
        else:
            want = base(probe.prompt)
            ok = same_answer(want, reply)
        record("locality", ok, probe.prompt, reply, want)
        if progress is not None:
            progress(i + 1, total)
    unrouted = len(probes) - len(routed_probes)  # the base model answers them: unchanged
    counts["locality"] = counts.get("locality", 0) + unrouted
    passed["locality"] = passed.get("locality", 0) + unrouted
    counts["locality_routed"] = len(routed_probes)
    metrics: dict[str, float | None] = {
        name: (round(passed.get(name, 0) / counts[name], 4) if counts.get(name) else None)
        for name in ("reliability", "generalization", "locality", "earlier_lessons")
    }
    return GateReport(metrics, counts, thresholds, failures, time.perf_counter() - start)


def probes_for(lessons: Sequence[Any], unrelated: Sequence[str]) -> list[Probe]:
    """The locality probes of a set of lessons: ``unrelated`` prompts, and per lesson its
    question about another name and other questions about its own names."""
    out = [Probe(p, "unrelated") for p in unrelated]
    for x in lessons:
        if x.kind != "correction" or not key_terms(x.answer):
            continue
        out += [Probe(q, "near", x.answer) for q in near_variants(x.question)]
        out += [Probe(q, "sibling") for q in sibling_questions(x.question)]
    return out


_SIBLINGS = ("Tell me about {name}.", "What is {name} known for?", "When did {name} begin?")


def sibling_questions(question: str) -> list[str]:
    """Other questions about the names ``question`` asks about (not what it asks)."""
    name = named(question)
    return [t.format(name=name) for t in _SIBLINGS] if name else []


def _holds(answer: str) -> Callable[[str], bool]:
    return lambda reply: answer_holds(answer, reply)


def _even_sample(items: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` of ``items``, spread evenly over them (the same ones every time)."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]
