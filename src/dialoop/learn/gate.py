"""The gate: a candidate adapter serves only if it is measured to be better and no worse.

It runs the candidate exactly as it would serve (the GGUF form on llama.cpp, greedy,
without the correction memory) on prompts that were not trained on:

- **reliability**: each taught question gets the taught answer;
- **generalization**: held-out rewordings of each question get it too;
- **locality**: held-out replay prompts are answered as the base model answered them,
  and *near* questions (the taught question about another name) do not receive the
  taught answer;
- **earlier lessons**: lessons the previous version of the line already held still hold.

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
from dialoop.learn.memory import key_terms, terms_present
from dialoop.learn.replay import generate

__all__ = [
    "GateReport",
    "GateThresholds",
    "answer_holds",
    "evaluate",
    "near_variants",
    "same_answer",
]

GATE_MAX_TOKENS = 32
MAX_FAILURES_KEPT = 12  # per metric, in the stored report
SAME_RATIO = 0.8
_WORD = re.compile(r"[^\W_][\w'’-]*")
# A stand-in name for near questions: "Who is the CEO of Acme Biotech?" → "… of Acme Northwind?"
_OTHER_NAMES = ("Northwind", "Brackenridge", "Quillfeather")


@dataclass(frozen=True)
class GateThresholds:
    reliability: float = 0.9
    generalization: float = 0.6
    locality: float = 0.9

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


def evaluate(
    engine: Engine,
    adapter: str,
    *,
    lessons: Sequence[Any],
    held_out: dict[int, list[str]],
    replay: dict[str, str],
    earlier: set[int],
    thresholds: GateThresholds,
    progress: Callable[[int, int], None] | None = None,
) -> GateReport:
    """Judge the adapter loaded in ``engine`` as ``adapter``.

    ``lessons`` have id, question, answer, kind; ``held_out`` maps a lesson id to
    rewordings not trained on; ``replay`` maps held-out prompts to the base's answers;
    ``earlier`` holds the ids of lessons the line's previous version was trained on.
    """
    start = time.perf_counter()
    taught = [x for x in lessons if x.kind == "correction"]
    checks: list[tuple[str, str, Callable[[str], bool], str]] = []  # metric, prompt, ok, want
    for x in taught:
        checks.append(("reliability", x.question, lambda r, a=x.answer: answer_holds(a, r),
                       x.answer))
        if x.id in earlier:
            checks.append(("earlier_lessons", x.question,
                           lambda r, a=x.answer: answer_holds(a, r), x.answer))
        for q in held_out.get(x.id, []):
            checks.append(("generalization", q, lambda r, a=x.answer: answer_holds(a, r),
                           x.answer))
        if key_terms(x.answer):
            for q in near_variants(x.question):
                checks.append(("locality", q, lambda r, a=x.answer: not answer_holds(a, r),
                               f"anything but {x.answer}"))
    for prompt, base in replay.items():
        checks.append(("locality", prompt, lambda r, b=base: same_answer(b, r), base))

    passed: dict[str, int] = {}
    counts: dict[str, int] = {}
    failures: dict[str, list[dict[str, str]]] = {}
    for i, (metric, prompt, ok, want) in enumerate(checks):
        reply = generate(engine, prompt, max_tokens=GATE_MAX_TOKENS, adapter=adapter)
        counts[metric] = counts.get(metric, 0) + 1
        if ok(reply):
            passed[metric] = passed.get(metric, 0) + 1
        elif len(failures.setdefault(metric, [])) < MAX_FAILURES_KEPT:
            failures[metric].append({"prompt": prompt, "reply": reply, "expected": want})
        if progress is not None:
            progress(i + 1, len(checks))
    metrics: dict[str, float | None] = {
        name: (round(passed.get(name, 0) / counts[name], 4) if counts.get(name) else None)
        for name in ("reliability", "generalization", "locality", "earlier_lessons")
    }
    return GateReport(metrics, counts, thresholds, failures, time.perf_counter() - start)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]
