"""KG question answering, measured: exact match per question type, with and without knowledge.

A dataset is a folder with ``graph.jsonl`` (or any importable graph file named
``graph.*``) and ``questions.jsonl``: ``{"type": "1-hop", "question": "…",
"answers": ["…"]}``, where an empty ``answers`` means the graph cannot answer it and
the right reply is to decline.

Scoring: an answer is right when every gold answer appears in the reply as whole
words, a number as the same value (24 = 24.00; case, thousands separators and
anything in parentheses or brackets — the template's reasoning chain and
citations — ignored), and the reply does not decline. An unanswerable question is
right when the reply declines.

Modes: ``template`` (the graph answers, a template words it), ``model`` (the graph
answers, the model words it from the facts), ``none`` (the model alone).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import Settings
from dialoop.engine import Engine
from dialoop.errors import InvalidInputError

__all__ = ["MODES", "EvalReport", "Question", "evaluate", "is_correct", "is_decline",
           "load_dataset", "load_questions"]

MODES = ("template", "model", "none")
_DECLINE = re.compile(
    r"\bi (?:do not|don't|don’t) know\b|\bno information\b|\bnot (?:sure|aware)\b|"
    r"\bcannot find\b|\bcan't find\b|\bdon't have (?:any )?(?:information|data)\b|"
    r"\bnot in my knowledge\b|\bunable to (?:find|answer)\b", re.I)


@dataclass(frozen=True)
class Question:
    type: str
    question: str
    answers: tuple[str, ...]


@dataclass
class EvalReport:
    mode: str
    by_type: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    false_declines: int = 0
    seconds: float = 0.0
    failures: list[dict[str, object]] = field(default_factory=list)

    def accuracy(self) -> dict[str, float]:
        out = {t: sum(v) / len(v) for t, v in sorted(self.by_type.items())}
        every = [x for v in self.by_type.values() for x in v]
        out["all"] = sum(every) / len(every) if every else 0.0
        return out

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "accuracy": {k: round(v, 3) for k, v in
                                                self.accuracy().items()},
                "counts": {t: len(v) for t, v in sorted(self.by_type.items())},
                "false_declines": self.false_declines, "seconds": round(self.seconds, 1),
                "failures": self.failures}


def load_questions(path: Path) -> list[Question]:
    out = []
    for line, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            out.append(Question(obj["type"], obj["question"], tuple(obj.get("answers", []))))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InvalidInputError(f"{path.name}: line {line} is not a question record "
                                    '({"type", "question", "answers"}).') from None
    return out


def load_dataset(dataset: Path) -> tuple[list[Path], list[Question]]:
    """The graph files and the questions of a KG QA dataset folder (checked)."""
    graphs = sorted(p for p in dataset.glob("graph.*") if p.suffix != ".py")
    questions_file = dataset / "questions.jsonl"
    if not graphs or not questions_file.is_file():
        raise InvalidInputError(f"{dataset} is not a KG QA dataset: it needs graph.jsonl (or "
                                "graph.ttl, …) and questions.jsonl.")
    return graphs, load_questions(questions_file)


def is_decline(reply: str) -> bool:
    return _DECLINE.search(reply) is not None


def _clean(text: str) -> str:
    text = re.sub(r"\([^()]*\)|\[[^\[\]]*\]", " ", text)  # reasoning chains, citations
    text = re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)  # 310,000 -> 310000
    return " ".join(text.lower().split())


def is_correct(q: Question, reply: str) -> bool:
    if not q.answers:
        return is_decline(reply)
    if is_decline(reply):
        return False
    text = _clean(reply)
    numbers = {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", text)}
    return all(_mentions(text, numbers, _clean(a)) for a in q.answers)


def _mentions(text: str, numbers: set[float], gold: str) -> bool:
    """Whether ``gold`` appears as whole words, or (a number) with the same value: 24 = 24.00."""
    if re.fullmatch(r"\d+(?:\.\d+)?", gold):
        return float(gold) in numbers
    return re.search(rf"(?<![\w.]){re.escape(gold)}(?![\w]|\.\d)", text) is not None


def evaluate(
    dataset: Path,
    settings: Settings,
    engine: Engine,
    *,
    modes: Iterable[str] = MODES,
    limit: int | None = None,
    max_tokens: int = 64,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[EvalReport]:
    """Run every question of ``dataset`` in each mode on a fresh database; one report each."""
    graphs, questions = load_dataset(dataset)
    questions = questions[:limit]
    for mode in modes:
        if mode not in MODES:
            raise InvalidInputError(f"Unknown mode {mode!r}: use {', '.join(MODES)}.")
    reports = []
    with tempfile.TemporaryDirectory(prefix="dialoop-eval-kg-") as tmp:
        for mode in modes:
            s = settings.model_copy(update={
                "home": Path(tmp) / mode, "database_url": None, "knowledge": mode != "none",
                "knowledge_answer": "model" if mode == "model" else "template",
                "knowledge_decline": True,
            })
            s.home.mkdir(parents=True, exist_ok=True)
            with open_assistant(s, engine=engine) as bot:
                for g in graphs:
                    bot.parts.knowledge.import_file(g, user="eval")
                reports.append(_run(bot, mode, questions, max_tokens, progress))
    return reports


def _run(bot: Assistant, mode: str, questions: list[Question], max_tokens: int,
         progress: Callable[[str, int, int], None] | None) -> EvalReport:
    report = EvalReport(mode)
    params = bot.default_params(max_tokens=max_tokens, temperature=0.0)
    start = time.perf_counter()
    for i, q in enumerate(questions):
        reply = bot.ask(q.question, params=params).text
        ok = is_correct(q, reply)
        report.by_type[q.type].append(ok)
        if q.answers and is_decline(reply):
            report.false_declines += 1
        if not ok:
            report.failures.append({"type": q.type, "question": q.question,
                                    "gold": list(q.answers), "reply": reply})
        if progress:
            progress(mode, i + 1, len(questions))
    report.seconds = time.perf_counter() - start
    return report
