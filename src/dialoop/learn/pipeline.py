"""One consolidation run, line by line: train → store → gate → promote or reject.

Called by the worker (:mod:`dialoop.learn.worker`) with a reporter for progress.
The models are loaded once per run: the torch twin for training, and a private
llama.cpp instance for the replay answers and the gate (the serving process's own
engine is never touched; it picks a promoted version up on its next request).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dialoop.config import Settings
from dialoop.engine.embedding import default_embedder
from dialoop.errors import InvalidInputError
from dialoop.evidence import Scope
from dialoop.learn.consolidate import TrainConfig, build_examples, train_lora
from dialoop.learn.gate import GateThresholds, evaluate, probes_for
from dialoop.learn.memory import CorrectionMemory
from dialoop.learn.replay import REPLAY_PROMPTS, BaseAnswers, locality_prompts
from dialoop.store import Database
from dialoop.store.adapters import AdapterStore
from dialoop.store.models import Lesson

__all__ = ["consolidate_lines", "lines_to_train"]

log = logging.getLogger(__name__)

Report = Callable[..., None]  # (stage, progress 0..1, force=False)


def lines_to_train(memory: CorrectionMemory, adapters: AdapterStore) -> dict[str, list[Lesson]]:
    """Every line that has active lessons or still serves a version, with its lessons.

    A line is named by its scope (``"global"``, ``"user:ann"``); adapters trained by
    ``dialoop train sft`` have other names and are not consolidation's business.
    """
    lines = {str(Scope.everyone())} | {x.scope for x in memory.lessons(status="active")}
    lines |= {name for name, v in adapters.heads().items() if v is not None and _is_scope(name)}
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
    plan = lines_to_train(memory, adapters)
    lines: dict[str, Any] = {}
    todo = {}
    for name, lessons in plan.items():
        outcome = _unchanged_or_empty(adapters, name, lessons)
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
                    settings, adapters, memory, name, lessons, run_id, engine, model, tokenizer,
                    gguf, base, sub)
        finally:
            base.save()
            engine.close()
    return {"lines": lines, "seconds": round(time.perf_counter() - start, 2)}


def _unchanged_or_empty(adapters: AdapterStore, name: str, lessons: list[Lesson]
                        ) -> dict[str, Any] | None:
    head = adapters.active(name)
    if not lessons:
        if head is not None:
            adapters.rollback(name, None)
            return {"outcome": "base", "note": "no active lessons: the base model serves"}
        return {"outcome": "skipped", "note": "no lessons"}
    if head is not None and head.meta.get("lessons") == [x.id for x in lessons]:
        return {"outcome": "unchanged", "version": head.version}
    return None


def _load_models(settings: Settings, report: Report) -> tuple[Any, Any, Any, Path]:
    import torch

    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import load_model

    report("loading the model", 0.0, force=True)
    torch.set_num_threads(settings.learn_threads)
    source = resolve_model(settings.model, home=settings.home)
    gguf = source.require_gguf()
    engine = LlamaCppEngine(gguf, name=source.name, context_window=1024,
                            threads=settings.learn_threads, prefix_cache_bytes=0)
    model, tokenizer = load_model(source, settings.home / "cache" / "models")
    return engine, model, tokenizer, gguf


def _consolidate_line(
    settings: Settings, adapters: AdapterStore, memory: CorrectionMemory, name: str,
    lessons: list[Lesson], run_id: int, engine: Any, model: Any, tokenizer: Any, gguf: Path,
    base: BaseAnswers, report: Report,
) -> tuple[dict[str, Any], Any]:
    """Train, store, gate, then promote or reject one line's adapter."""
    train_replay = [(p, base(p)) for p in REPLAY_PROMPTS[: settings.learn_replay]]
    examples, held_out = build_examples(lessons, train_replay)
    config = TrainConfig(rank=settings.learn_rank, alpha=2 * settings.learn_rank,
                         layers=settings.learn_layers, epochs=settings.learn_epochs,
                         lr=settings.learn_lr)
    report("training", 0.0, force=True)
    peft, trained = train_lora(model, tokenizer, examples, config,
                               progress=lambda s, t: report(f"training step {s}/{t}",
                                                            0.75 * s / t))
    report("storing", 0.75, force=True)
    previous = adapters.active(name)
    router = [x.id for x in lessons if x.kind == "correction"]
    tmp_root = settings.home / "learn" / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        peft.save_pretrained(tmp)
        row = adapters.add(
            name, Path(tmp), source="consolidation", base_model=engine.name, base_gguf=gguf,
            user_id=Scope.parse(name).user,
            meta={"lessons": [x.id for x in lessons], "router": router, "run": run_id,
                  "examples": len(examples), "train": trained.to_dict()},
        )
    model = peft.unload()  # the base model again, for the next line
    report("gate", 0.8, force=True)
    scope = Scope.parse(name)

    def route(prompt: str) -> bool:  # the router the version will serve behind
        return bool(memory.match(prompt, user=scope, among=set(router),
                                 similarity=settings.learn_route_similarity))

    unrelated = [p for p in (*REPLAY_PROMPTS, *locality_prompts())
                 if p not in dict(train_replay)][: settings.learn_gate_probes]
    engine.load_adapter(row.key, adapters.files(row, "llamacpp"))
    try:
        gate = evaluate(
            engine, row.key, route=route, base=base, lessons=lessons, held_out=held_out,
            probes=probes_for(lessons, unrelated),
            earlier=set(previous.meta.get("lessons", [])) if previous else set(),
            thresholds=GateThresholds(settings.learn_gate_reliability,
                                      settings.learn_gate_generalization,
                                      settings.learn_gate_locality),
            sample=settings.learn_gate_sample,
            progress=lambda i, n: report(f"gate {i}/{n}", 0.8 + 0.2 * i / n),
        )
    finally:
        engine.unload_adapter(row.key)
    result = {"version": row.version, "lessons": len(lessons), "train": trained.to_dict(),
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


def _size(folder: Path) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in folder.iterdir() if f.is_file()}
