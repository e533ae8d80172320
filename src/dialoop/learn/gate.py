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

A version's *style* part (trained on a user's bare ratings, :mod:`dialoop.learn.kto`)
answers every message its own router takes, so :func:`evaluate_style` judges it on two
more checks:

- **rated behaviour**: on ratings held out from training, the adapter orders answers as
  the user did. Each held-out answer's log-prob ratio to the base model (per token) is
  computed by the caller; of the (liked, disliked) pairs, the share where the liked one
  was moved up more than the disliked one (0.5 is chance; with one class held out, the
  share moved the right way). The gate cannot know the user's reasons, only their
  ratings: this is what it can measure without generating, and it is what KTO trains;
- **style locality**: the unrelated probes, answered by the whole stack as it serves
  (the style part where its router sends the prompt, the lessons part where theirs
  does), are answered as the base model answers them (the same rule as locality). A
  probe no router takes is the base model's answer by construction, not generated.
  ``style_identical`` (the reply is the start of the base answer, character for
  character) is reported, not judged.

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
    "evaluate_style",
    "merge_reports",
    "near_variants",
    "probes_for",
    "rated_behaviour",
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
    rated_behaviour: float = 0.6  # the style part (0.5: chance); its locality: ``locality``

    def to_dict(self) -> dict[str, float]:
        return {"reliability": self.reliability, "generalization": self.generalization,
                "locality": self.locality, "rated_behaviour": self.rated_behaviour}


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
                "locality": t.locality, "earlier_lessons": t.reliability,
                "rated_behaviour": t.rated_behaviour, "style_locality": t.locality}
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

    routed = [route(p.prompt) for p in probes]
    routed_probes = [p for p, r in zip(probes, routed, strict=True) if r]
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
        # Another question about a taught name may rightly draw on the lesson ("Tell me
        # about Acme" → "Acme was founded by …"), so it is reported, not gated; locality is
        # unrelated prompts and the same question about other names (CounterFact's
        # neighbourhood), as in the model-editing literature.
        record("same_subject" if probe.kind == "sibling" else "locality",
               ok, probe.prompt, reply, want)
        if progress is not None:
            progress(i + 1, total)
    for probe, r in zip(probes, routed, strict=True):
        if not r:  # the base model answers it: unchanged
            metric = "same_subject" if probe.kind == "sibling" else "locality"
            counts[metric] = counts.get(metric, 0) + 1
            passed[metric] = passed.get(metric, 0) + 1
    counts["locality_routed"] = sum(p.kind != "sibling" for p in routed_probes)
    metrics: dict[str, float | None] = {
        name: (round(passed.get(name, 0) / counts[name], 4) if counts.get(name) else None)
        for name in ("reliability", "generalization", "locality", "earlier_lessons",
                     "same_subject")
    }
    return GateReport(metrics, counts, thresholds, failures, time.perf_counter() - start)


def evaluate_style(
    engine: Engine,
    stack: Callable[[str], str | None],
    *,
    base: Callable[[str], str],
    ratios: Sequence[float],
    desirable: Sequence[bool],
    probes: Sequence[str],
    thresholds: GateThresholds,
    progress: Callable[[int, int], None] | None = None,
) -> GateReport:
    """Judge a style part: ``ratios`` are the held-out rated answers' log-prob ratios to the
    base model (see :func:`rated_behaviour`), ``desirable`` their ratings; ``stack(prompt)``
    is the adapter reference that answers ``prompt`` as the version would serve it (the
    parts loaded in ``engine``; None: the base model), and ``probes`` the unrelated
    prompts."""
    start = time.perf_counter()
    behaviour = rated_behaviour(ratios, desirable)
    routed = [(p, key) for p in probes if (key := stack(p)) is not None]
    same = identical = len(probes) - len(routed)  # the base model answers the others
    failures: list[dict[str, str]] = []
    for i, (prompt, key) in enumerate(routed):
        reply = generate(engine, prompt, max_tokens=GATE_MAX_TOKENS, adapter=key)
        want = base(prompt)
        ok = same_answer(want, reply)
        same += ok
        identical += want.startswith(reply) and bool(reply or not want)
        if not ok and len(failures) < MAX_FAILURES_KEPT:
            failures.append({"prompt": prompt, "reply": reply, "expected": want})
        if progress is not None:
            progress(i + 1, len(routed))
    n = len(probes)
    metrics: dict[str, float | None] = {
        "rated_behaviour": None if behaviour is None else round(behaviour, 4),
        "style_locality": round(same / n, 4) if n else None,
        "style_identical": round(identical / n, 4) if n else None,
    }
    counts = {"rated_held_out": len(ratios), "rated_liked": sum(map(bool, desirable)),
              "style_locality": n, "style_locality_routed": len(routed)}
    return GateReport(metrics, counts, thresholds,
                      {"style_locality": failures} if failures else {},
                      time.perf_counter() - start)


def rated_behaviour(ratios: Sequence[float], desirable: Sequence[bool]) -> float | None:
    """Of the (liked, disliked) pairs of held-out rated answers, the share where the liked
    answer's log-prob ratio to the base model is the higher (ties count half); with only
    one kind held out, the share whose ratio has the right sign (up if liked, down if
    not). None without any."""
    liked = [r for r, d in zip(ratios, desirable, strict=True) if d]
    disliked = [r for r, d in zip(ratios, desirable, strict=True) if not d]
    if liked and disliked:
        wins = sum((a > b) + 0.5 * (a == b) for a in liked for b in disliked)
        return wins / (len(liked) * len(disliked))
    if liked or disliked:
        return sum((r > 0) == d for r, d in zip(ratios, desirable, strict=True)) / len(ratios)
    return None


def merge_reports(first: GateReport, second: GateReport) -> GateReport:
    """One report of two sets of checks on one version (the same thresholds)."""
    return GateReport({**first.metrics, **second.metrics}, {**first.counts, **second.counts},
                      first.thresholds, {**first.failures, **second.failures},
                      first.seconds + second.seconds)


def probes_for(lessons: Sequence[Any], unrelated: Sequence[str], sample: int | None = None
               ) -> list[Probe]:
    """The locality probes of a set of lessons: ``unrelated`` prompts, and per lesson its
    question about another name and other questions about its own names — for the same
    even ``sample`` of the corrections that :func:`evaluate` checks (all without one)."""
    out = [Probe(p, "unrelated") for p in unrelated]
    corrections = [x for x in lessons if x.kind == "correction"]
    for x in corrections if sample is None else _even_sample(corrections, sample):
        if not key_terms(x.answer):
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
