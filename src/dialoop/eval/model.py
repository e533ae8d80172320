"""How good is a model (or an adapter) on held-out dialogues, and better than the base?

Two kinds of measure, both on the assistant's turns of every test dialogue:

- **token metrics** (the torch twin, teacher-forced): loss per assistant token,
  perplexity, and token accuracy (the share of assistant tokens that are the
  model's top prediction);
- **generation metrics** (the engine that serves, greedy): for each assistant turn,
  the model answers the conversation so far (with the reference answers as
  history) and its answer is compared to the reference: BLEU (sacrebleu), ROUGE-L
  F1 (rouge-score), exact match after normalization, and, for turns that list
  ``keys``, the share of answers that contain every key (case-insensitive).

``compare`` runs both for the base model and for the adapter, so one table shows
what training changed.
"""

from __future__ import annotations

import logging
import re
import string
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dialoop.config import Settings
from dialoop.engine import Engine, GenerationParams, open_engine
from dialoop.errors import InvalidInputError
from dialoop.train.data import Dialogue

__all__ = ["Comparison", "EvalResult", "compare", "generation_metrics", "token_metrics"]

log = logging.getLogger(__name__)

METRICS = ("loss", "perplexity", "token_accuracy", "bleu", "rouge_l", "exact_match",
           "key_accuracy")
# Which way is better, for the table's arrows.
HIGHER_IS_BETTER = {"loss": False, "perplexity": False}


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one model on one data set, and every generated answer."""

    label: str  # "base" or the adapter's name
    metrics: dict[str, float]
    samples: list[dict[str, Any]]  # where, prompt_last, reference, answer, keys, keys_found


@dataclass(frozen=True)
class Comparison:
    results: list[EvalResult]  # base first

    def table(self) -> str:
        """A Markdown table: one row per metric, one column per model, and the change."""
        names = [r.label for r in self.results]
        head = "| metric | " + " | ".join(names) + (" | change |" if len(names) == 2 else " |")
        lines = [head, "|---" * (len(names) + 1 + (len(names) == 2)) + "|"]
        for metric in METRICS:
            values = [r.metrics.get(metric) for r in self.results]
            if all(v is None for v in values):
                continue
            cells = [_fmt(metric, v) for v in values]
            if len(values) == 2 and None not in values:
                delta = values[1] - values[0]  # type: ignore[operator]
                better = (delta < 0) if not HIGHER_IS_BETTER.get(metric, True) else (delta > 0)
                arrow = "better" if better and delta else ("worse" if delta else "same")
                cells.append(f"{delta:+.3f} ({arrow})")
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {r.label: {"metrics": r.metrics, "samples": r.samples} for r in self.results}


def compare(
    settings: Settings,
    dialogues: Sequence[Dialogue],
    *,
    model: str,
    adapter: tuple[str, Path, Path | None] | None,
    engine_kind: Literal["llamacpp", "torch"] = "llamacpp",
    turns: Literal["all", "last"] = "all",
    max_new_tokens: int = 128,
    generate: bool = True,
    progress: bool = False,
) -> Comparison:
    """Evaluate the base ``model`` and, with ``adapter`` = (label, PEFT folder, GGUF file or
    None), the base with that adapter, on the same dialogues."""
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import load_model

    source = resolve_model(model, home=settings.home)
    labels = ["base"] + ([adapter[0]] if adapter else [])
    metrics: dict[str, dict[str, float]] = {label: {} for label in labels}
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}

    # Token metrics on the torch twin: the base, then the same weights with the adapter.
    torch_model, tokenizer = load_model(source, settings.home / "cache" / "models")
    metrics["base"].update(token_metrics(torch_model, tokenizer, dialogues))
    if adapter is not None:
        from peft import PeftModel

        with warnings.catch_warnings():  # a deprecation inside PEFT, not ours to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            peft_model = PeftModel.from_pretrained(torch_model, str(adapter[1]))
        metrics[adapter[0]].update(token_metrics(peft_model, tokenizer, dialogues))
    del torch_model

    # Generation metrics on the engine that serves.
    if generate:
        engine = open_engine(settings.model_copy(update={"engine": engine_kind}), model=model)
        try:
            keyed = None
            if adapter is not None:
                keyed = f"eval:{adapter[0]}"
                engine.load_adapter(keyed, _adapter_files(adapter, engine_kind, source.gguf))
            for label, engine_adapter in zip(labels, [None, keyed], strict=False):
                found, answers = generation_metrics(
                    engine, dialogues, adapter=engine_adapter, turns=turns,
                    max_new_tokens=max_new_tokens, repeat_penalty=settings.repeat_penalty,
                    progress=f"answers of {label}" if progress else None,
                )
                metrics[label].update(found)
                samples[label] = answers
        finally:
            engine.close()
    return Comparison([EvalResult(label, metrics[label], samples[label]) for label in labels])


def token_metrics(model: Any, tokenizer: Any, dialogues: Sequence[Dialogue],
                  *, max_length: int = 2048) -> dict[str, float]:
    """Loss, perplexity and token accuracy over every assistant token (teacher forcing)."""
    from dialoop.train.packing import encode_dialogues, pack
    from dialoop.train.sft import autocast, evaluate_rows

    rows = pack(encode_dialogues(tokenizer, dialogues, max_length=max_length), max_length, 0)
    with autocast("auto")():
        return evaluate_rows(model, rows)


def generation_metrics(
    engine: Engine,
    dialogues: Sequence[Dialogue],
    *,
    adapter: str | None = None,
    turns: Literal["all", "last"] = "all",
    max_new_tokens: int = 128,
    repeat_penalty: float = 1.0,
    progress: str | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Answer every assistant turn (given the reference history); score against references.

    ``progress`` is the label of a progress bar (none without it).
    """
    import sacrebleu
    from rouge_score import rouge_scorer
    from tqdm.auto import tqdm

    params = GenerationParams(temperature=0.0, max_tokens=max_new_tokens,
                              repeat_penalty=repeat_penalty)
    samples: list[dict[str, Any]] = []
    for d in tqdm(dialogues, desc=progress, disable=progress is None, unit="dialogue"):
        targets = d.assistant_turns if turns == "all" else d.assistant_turns[-1:]
        for i in targets:
            answer = "".join(c.text for c in engine.stream(d.messages[:i], params, adapter=adapter))
            keys = d.keys.get(i, ())
            samples.append({
                "where": d.where, "turn": i, "question": d.messages[i - 1]["content"],
                "reference": d.messages[i]["content"], "answer": answer.strip(),
                "keys": list(keys),
                "keys_found": all(k.lower() in answer.lower() for k in keys) if keys else None,
            })
    if not samples:
        raise InvalidInputError("No assistant turns to evaluate.")
    answers = [s["answer"] for s in samples]
    references = [s["reference"] for s in samples]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(ref, ans)["rougeL"].fmeasure for ref, ans in zip(references, answers,
                                                                          strict=True)]
    keyed = [s["keys_found"] for s in samples if s["keys_found"] is not None]
    metrics = {
        "bleu": sacrebleu.corpus_bleu(answers, [references]).score,
        "rouge_l": sum(rouge) / len(rouge),
        "exact_match": sum(_normal(a) == _normal(r) for a, r in zip(answers, references,
                                                                     strict=True)) / len(samples),
        "answers": float(len(samples)),
    }
    if keyed:
        metrics["key_accuracy"] = sum(keyed) / len(keyed)
        metrics["keyed_answers"] = float(len(keyed))
    return metrics, samples


def _adapter_files(adapter: tuple[str, Path, Path | None], engine_kind: str,
                   base_gguf: Path | None) -> Path:
    """What the engine loads: the PEFT folder (torch) or a GGUF LoRA (llama.cpp)."""
    label, folder, gguf = adapter
    if engine_kind == "torch":
        return folder
    if gguf is not None:
        return gguf
    if base_gguf is None:
        raise InvalidInputError("The llama.cpp engine needs a GGUF base model; use --engine torch.")
    from dialoop.engine.lora import export_lora_gguf

    out = Path(tempfile.mkdtemp(prefix="dialoop-eval-")) / "adapter.gguf"
    return export_lora_gguf(folder, out, base_gguf=base_gguf)


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def _normal(text: str) -> str:
    """Exact match ignores case, punctuation and spacing (as SQuAD's does)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if metric in ("bleu", "perplexity"):
        return f"{value:.2f}"
    return f"{value:.3f}"
