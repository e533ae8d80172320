"""One consolidation run, line by line: train → store → gate → promote or reject.

A line's version has up to two parts: a lessons adapter (its active lessons, served
behind their router) and a style adapter (its user's bare ratings, trained with KTO,
:mod:`dialoop.learn.kto`, once there are ``learn_style_min_ratings``; it serves the
user's messages that are like the questions they rated). One in
:data:`~dialoop.learn.ratings.HELD_OUT_EVERY` ratings is held out of the style adapter's
training for the gate. The version is gated, and promoted or rejected, as a whole.

Called by the worker (:mod:`dialoop.learn.worker`) with a reporter for progress.
The models are loaded once per run: the torch twin for training, and a private
llama.cpp instance for the replay answers and the gate (the serving process's own
engine is never touched; it picks a promoted version up on its next request).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialoop.config import Settings
from dialoop.engine.adapters import PART_SEP, stack_key
from dialoop.engine.embedding import default_embedder
from dialoop.errors import InvalidInputError
from dialoop.evidence import Scope
from dialoop.learn.consolidate import TrainConfig, build_examples, train_lora
from dialoop.learn.gate import (
    GateReport,
    GateThresholds,
    evaluate,
    evaluate_style,
    merge_reports,
    probes_for,
)
from dialoop.learn.kto import StyleConfig, StyleResult, log_ratios, train_style
from dialoop.learn.memory import CorrectionMemory
from dialoop.learn.ratings import Rated, RatedQuestions, rated_lines, split_held_out
from dialoop.learn.replay import REPLAY_PROMPTS, BaseAnswers, locality_prompts
from dialoop.store import Database
from dialoop.store.adapters import STYLE, AdapterStore
from dialoop.store.models import Lesson

__all__ = ["consolidate_lines", "lines_to_train"]

log = logging.getLogger(__name__)

Report = Callable[..., None]  # (stage, progress 0..1, force=False)
# The style adapter keeps the base model's distributions on the answers to the first
# this-many replay prompts; the style gate's locality probes are the other prompts.
STYLE_ANCHORS = 30


def lines_to_train(memory: CorrectionMemory, adapters: AdapterStore, rated: Iterable[str] = ()
                   ) -> dict[str, list[Lesson]]:
    """Every line that has active lessons, enough ratings (``rated``: those lines) or still
    serves a version, with its lessons.

    A line is named by its scope (``"global"``, ``"user:ann"``); adapters trained by
    ``dialoop train sft`` have other names and are not consolidation's business.
    """
    lines = {str(Scope.everyone())} | {x.scope for x in memory.lessons(status="active")}
    lines |= {name for name, v in adapters.heads().items() if v is not None and _is_scope(name)}
    lines |= set(rated)
    return {name: memory.for_line(Scope.parse(name)) for name in sorted(lines)}


def _is_scope(name: str) -> bool:
    try:
        Scope.parse(name)
    except InvalidInputError:
        return False
    return True


def consolidate_lines(settings: Settings, db: Database, run_id: int, report: Report
                      ) -> dict[str, Any]:
    """Consolidate every line that changed; return the run's report (per line)."""
    start = time.perf_counter()
    adapters = AdapterStore(db, settings.home)
    memory = CorrectionMemory(db, default_embedder())
    ratings = rated_lines(db, settings.learn_style_min_ratings)
    plan = lines_to_train(memory, adapters, ratings)
    lines: dict[str, Any] = {}
    todo = {}
    for name, lessons in plan.items():
        outcome = _unchanged_or_empty(adapters, name, lessons, ratings.get(name, []))
        if outcome is not None:
            lines[name] = outcome
        else:
            todo[name] = lessons
    if todo:
        engine, model, tokenizer, gguf = _load_models(settings, report)
        base = BaseAnswers(engine, settings.home / "learn")
        try:
            for i, (name, lessons) in enumerate(todo.items()):
                def sub(stage: str, frac: float, *, force: bool = False, i: int = i,
                        name: str = name) -> None:
                    report(f"{name}: {stage}", 0.05 + 0.95 * (i + frac) / len(todo), force=force)
                lines[name], model = _consolidate_line(
                    settings, adapters, memory, name, lessons, ratings.get(name, []), run_id,
                    engine, model, tokenizer, gguf, base, sub)
        finally:
            base.save()
            engine.close()
    return {"lines": lines, "seconds": round(time.perf_counter() - start, 2)}


def _unchanged_or_empty(adapters: AdapterStore, name: str, lessons: list[Lesson],
                        rated: list[Rated]) -> dict[str, Any] | None:
    """The outcome of a line with nothing to train, or whose serving version already holds
    exactly its lessons and ratings; None if it needs a run."""
    head = adapters.active(name)
    if not lessons and not rated:
        if head is not None:
            adapters.rollback(name, None)
            return {"outcome": "base",
                    "note": "no active lessons or ratings: the base model serves"}
        return {"outcome": "skipped", "note": "no lessons"}
    if (head is not None and head.meta.get("lessons") == [x.id for x in lessons]
            and head.meta.get("ratings", []) == [r.feedback_id for r in rated]):
        return {"outcome": "unchanged", "version": head.version}
    return None


def _load_models(settings: Settings, report: Report) -> tuple[Any, Any, Any, Path]:
    import torch

    from dialoop.engine.formats import served_file
    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import load_model

    report("loading the model", 0.0, force=True)
    torch.set_num_threads(settings.learn_threads)
    source = resolve_model(settings.model, home=settings.home)
    gguf = source.require_gguf()  # the adapters' base, whatever format serves
    # The gate judges an adapter on the weights that will serve it (the host's pick).
    served = served_file(gguf, settings.home, settings.weight_format)
    engine = LlamaCppEngine(served.path, name=source.name, context_window=1024,
                            threads=settings.learn_threads, prefix_cache_bytes=0)
    model, tokenizer = load_model(source, settings.home / "cache" / "models")
    return engine, model, tokenizer, gguf


def _consolidate_line(
    settings: Settings, adapters: AdapterStore, memory: CorrectionMemory, name: str,
    lessons: list[Lesson], rated: list[Rated], run_id: int, engine: Any, model: Any,
    tokenizer: Any, gguf: Path, base: BaseAnswers, report: Report,
) -> tuple[dict[str, Any], Any]:
    """Train, store, gate, then promote or reject one line's adapter: its lessons part if
    it has lessons, its style part if it has ``rated`` answers."""
    train_replay = [(p, base(p)) for p in REPLAY_PROMPTS[: settings.learn_replay]]
    examples, held_out = build_examples(lessons, train_replay) if lessons else ([], {})
    tmp_root = settings.home / "learn" / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        lessons_dir, trained = None, None
        if lessons:
            config = TrainConfig(rank=settings.learn_rank, alpha=2 * settings.learn_rank,
                                 layers=settings.learn_layers, epochs=settings.learn_epochs,
                                 lr=settings.learn_lr)
            share = 0.6 if rated else 0.75
            report("training", 0.0, force=True)
            peft, trained = train_lora(model, tokenizer, examples, config,
                                       progress=lambda s, t: report(f"training step {s}/{t}",
                                                                    share * s / t))
            lessons_dir = Path(tmp) / "lessons"
            peft.save_pretrained(lessons_dir)
            model = peft.unload()  # the base model again, for the style part or the next line
        style: _Style | None = None
        anchors = [(p, base(p)) for p in REPLAY_PROMPTS[:STYLE_ANCHORS]] if rated else []
        if rated:
            style, model = _train_style_part(model, tokenizer, rated, anchors,
                                             Path(tmp) / "style", 0.6 if lessons else 0.0,
                                             report)
        report("storing", 0.75, force=True)
        previous = adapters.active(name)
        router = [x.id for x in lessons if x.kind == "correction"]
        row = adapters.add(
            name, lessons_dir, source="consolidation", base_model=engine.name, base_gguf=gguf,
            user_id=Scope.parse(name).user, style_dir=Path(tmp) / "style" if style else None,
            meta={"lessons": [x.id for x in lessons], "router": router, "run": run_id,
                  "examples": len(examples), "train": trained.to_dict() if trained else None,
                  "ratings": [r.feedback_id for r in rated],
                  # the style part's router: messages like these (LearningLoop.style_routes)
                  "style_router": [r.question for r in rated] if style else None,
                  "style": style.result.to_dict() if style else None},
        )
    report("gate", 0.8, force=True)
    scope = Scope.parse(name)

    def route(prompt: str) -> bool:  # the router the version will serve behind
        return bool(memory.match(prompt, user=scope, among=set(router),
                                 similarity=settings.learn_route_similarity))

    unrelated = [p for p in (*REPLAY_PROMPTS, *locality_prompts())
                 if p not in dict(train_replay)][: settings.learn_gate_probes]
    thresholds = GateThresholds(settings.learn_gate_reliability,
                                settings.learn_gate_generalization, settings.learn_gate_locality,
                                rated_behaviour=settings.learn_gate_rated_behaviour)
    style_key = f"{row.key}{PART_SEP}{STYLE}"
    parts = ([row.key] if lessons else []) + ([style_key] if style else [])
    for part in parts:
        engine.load_adapter(part, adapters.locate(part, engine.kind))
    try:
        gate: GateReport | None = None
        if lessons:
            gate = evaluate(
                engine, row.key, route=route, base=base, lessons=lessons, held_out=held_out,
                probes=probes_for(lessons, unrelated, settings.learn_gate_sample),
                earlier=set(previous.meta.get("lessons", [])) if previous else set(),
                thresholds=thresholds, sample=settings.learn_gate_sample,
                progress=lambda i, n: report(f"gate {i}/{n}", 0.8 + 0.1 * i / n),
            )
        if style is not None:
            rated_questions = RatedQuestions(memory.embedder, [r.question for r in rated])
            near = settings.learn_style_route_similarity

            def stack(prompt: str) -> str | None:  # as the version serves it, or the base
                parts = [*([style_key] if rated_questions.near(prompt, near) else []),
                         *([row.key] if lessons and route(prompt) else [])]
                return stack_key(parts) if parts else None

            styled = evaluate_style(
                engine, stack, base=base, ratios=style.ratios,
                desirable=[r.desirable for r in style.held_out],
                probes=[p for p in unrelated if p not in dict(anchors)],
                thresholds=thresholds,
                progress=lambda i, n: report(f"style gate {i}/{n}", 0.9 + 0.1 * i / n))
            gate = styled if gate is None else merge_reports(gate, styled)
    finally:
        for part in parts:
            engine.unload_adapter(part)
    assert gate is not None
    result = {"version": row.version, "lessons": len(lessons), "ratings": len(rated),
              "train": (trained or style.result).to_dict(),  # type: ignore[union-attr]
              "style": style.result.to_dict() if style else None,
              "gate": gate.to_dict(), "size_bytes": _size(settings.home / row.path)}
    if gate.passed:
        adapters.set_report(name, row.version, result)
        adapters.promote(name, row.version)
        result["outcome"] = "promoted"
    else:
        adapters.reject(name, row.version, result)
        result["outcome"] = "rejected"
    log.info("%s v%d %s: %s", name, row.version, result["outcome"], gate.metrics)
    return result, model


@dataclass
class _Style:
    """A trained style part: what happened, and how it moved the held-out rated answers."""

    result: StyleResult
    held_out: list[Rated]
    ratios: list[float]  # per held-out answer: mean log-prob ratio to the base model


def _train_style_part(model: Any, tokenizer: Any, rated: list[Rated],
                      anchors: list[tuple[str, str]], folder: Path, start: float,
                      report: Report) -> tuple[_Style, Any]:
    """Train the style adapter on all but the held-out ratings (kept near the base model on
    ``anchors``), measure it on the held-out ones, save it in ``folder``; return it and
    the base model again."""
    train, held_out = split_held_out(rated)
    config = StyleConfig()
    report("training on ratings", start, force=True)
    span = 0.75 - start
    peft, result = train_style(
        model, tokenizer, train, config, anchors=anchors,
        progress=lambda s, t: report(f"training on ratings, step {s}/{t}", start + span * s / t))
    ratios = log_ratios(peft, tokenizer, held_out, config) if held_out else []
    peft.save_pretrained(folder)
    return _Style(result, held_out, ratios), peft.unload()


def _size(folder: Path) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in folder.iterdir() if f.is_file()}
