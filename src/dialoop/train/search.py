"""``dialoop train sft --search N``: a small hyperparameter search, then the real run.

    searched = search_and_train(config, settings, n_trials=8)
    print(searched.table())            # one line per trial, the best marked
    searched.result.adapter.key        # the run trained with the best parameters

Optuna's TPE sampler (seeded with the run's seed) proposes, per trial, a learning rate
(log-uniform, a decade either side of the configured one), a weight decay, and the
method's size: the rank for LoRA and AdaLoRA, the number of virtual tokens for prefix
and prompt tuning, the bottleneck width for adapters. Each trial is a short run (a
quarter of the full run's steps unless ``trial_steps`` says otherwise) from the same
base weights on the same rows, scored by its validation loss at the end. The data is
read and the model loaded once for all trials. Then the full run trains with the best
parameters and its report (``report.json`` and ``search.json``) records every trial.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from dialoop.config import Settings
from dialoop.errors import InvalidInputError
from dialoop.train.chat_data import IGNORE
from dialoop.train.packing import PackedRow
from dialoop.train.report import write_report
from dialoop.train.sft import (
    SFTConfig,
    SFTResult,
    _make_trainable,
    _train,
    prepare,
    total_steps,
    train_sft,
)

__all__ = ["SearchResult", "Trial", "search_and_train"]

log = logging.getLogger(__name__)

_SIZE = {  # the method's size option and the values tried
    "lora": ("lora_r", [4, 8, 16, 32]),
    "adalora": ("lora_r", [4, 8, 16, 32]),
    "prefix": ("virtual_tokens", [5, 10, 20, 40]),
    "prompt": ("virtual_tokens", [5, 10, 20, 40]),
    "adapter": ("bottleneck", [16, 32, 64, 128]),
}
_WEIGHT_DECAY = [0.0, 0.01, 0.1]


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]  # SFTConfig fields the trial changed
    val_loss: float  # validation loss at the end of the trial
    seconds: float


@dataclass(frozen=True)
class SearchResult:
    trials: list[Trial]
    best: dict[str, Any]  # the parameters the final run used
    trial_steps: int
    result: SFTResult  # the final run

    def table(self) -> str:
        """The trials as a Markdown table, best first marked with *."""
        names = list(self.trials[0].params)
        lines = [f"Search: {len(self.trials)} trials of {self.trial_steps} steps each",
                 "| trial | " + " | ".join(names) + " | val loss | s |",
                 "|---" * (len(names) + 3) + "|"]
        best = min(self.trials, key=lambda t: t.val_loss)
        for t in self.trials:
            cells = [_fmt(t.params[n]) for n in names]
            mark = "*" if t is best else " "
            lines.append(f"| {t.number}{mark} | " + " | ".join(cells)
                         + f" | {t.val_loss:.4f} | {t.seconds:.1f} |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"best": self.best, "trial_steps": self.trial_steps,
                "trials": [{"number": t.number, "params": t.params, "val_loss": t.val_loss,
                            "seconds": round(t.seconds, 2)} for t in self.trials]}


def search_and_train(
    config: SFTConfig,
    settings: Settings,
    n_trials: int,
    *,
    trial_steps: int | None = None,
    progress: bool = False,
) -> SearchResult:
    """Search ``n_trials`` short runs on the validation loss, then train with the best."""
    if config.validation_file is None:
        raise InvalidInputError("A search chooses by the validation loss: give a validation "
                                "file of dialogues.")
    if n_trials < 1:
        raise InvalidInputError("A search needs at least one trial.")
    if config.resume:
        raise InvalidInputError("A search starts new runs; it cannot resume one.")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        trials, steps = _search(config, settings, n_trials, trial_steps, progress)
    finally:
        torch.set_num_threads(threads)

    best = min(trials, key=lambda t: t.val_loss).params
    result = train_sft(replace(config, **best), settings, progress=progress)
    searched = SearchResult(trials, best, steps, result)
    result.report["search"] = searched.to_json()
    write_report(result.report, result.run_dir)  # again, with the search in it
    (result.run_dir / "search.json").write_text(json.dumps(searched.to_json(), indent=1))
    return searched


def _search(config: SFTConfig, settings: Settings, n_trials: int, trial_steps: int | None,
            progress: bool) -> tuple[list[Trial], int]:
    """The trials, on data read and a model loaded once; and the steps each took."""
    import optuna

    prepared = prepare(config, settings)
    steps = trial_steps or max(1, total_steps(config, len(prepared.train_rows)) // 4)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    root = settings.home / "runs" / config.name / f"search-{stamp}"
    trials: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial, config)
        trial_config = replace(config, **params, max_steps=steps, eval_every=steps,
                               save_every=steps, promote=False,
                               run_dir=root / f"trial-{trial.number}")
        val_loss, seconds = _run_trial(trial_config, prepared, steps, config.virtual_tokens)
        trials.append(Trial(trial.number, params, val_loss, seconds))
        log.info("trial %d %s: validation loss %.4f", trial.number, params, val_loss)
        return val_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=config.seed))
    study.optimize(objective, n_trials=n_trials, show_progress_bar=progress)
    return trials, steps


def _suggest(trial: Any, config: SFTConfig) -> dict[str, Any]:
    """The SFTConfig fields this trial tries."""
    lr = config.learning_rate
    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", lr / 10, lr * 10, log=True),
        "weight_decay": trial.suggest_categorical("weight_decay", _WEIGHT_DECAY),
    }
    if config.method in _SIZE:
        field, values = _SIZE[config.method]
        params[field] = trial.suggest_categorical(field, values)
        if field == "lora_r":  # keep the configured alpha / rank, LoRA's scale
            params["lora_alpha"] = max(1, round(params["lora_r"] * config.lora_alpha
                                                / config.lora_r))
    return params


def _run_trial(config: SFTConfig, prepared: Any, steps: int,
               prepared_tokens: int) -> tuple[float, float]:
    """(validation loss after ``steps`` steps, seconds) of one trial from the base weights."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    train_rows, val_rows = prepared.train_rows, prepared.val_rows
    if config.method == "prompt" and config.virtual_tokens != prepared_tokens:
        train_rows = _reshift(train_rows, prepared_tokens, config.virtual_tokens)
        val_rows = _reshift(val_rows, prepared_tokens, config.virtual_tokens)
    model = _make_trainable(copy.deepcopy(prepared.model), config, steps)
    assert config.run_dir is not None
    config.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome = _train(model, train_rows, val_rows, config, config.run_dir, False, None)
    finally:
        for kept in ("checkpoints", "adapter", "model"):  # the logs stay, the weights go
            shutil.rmtree(config.run_dir / kept, ignore_errors=True)
    return outcome["evals"][-1]["loss"], time.perf_counter() - started


def _reshift(rows: list[PackedRow], old: int, new: int) -> list[PackedRow]:
    """Prompt-tuning rows for ``new`` virtual tokens instead of ``old`` (see
    ``peft_methods.unpacked_rows``: the targets start with one IGNORE per virtual token)."""
    pad = torch.full((new,), IGNORE, dtype=rows[0].targets.dtype) if rows else None
    return [replace(r, targets=torch.cat([pad, r.targets[old:]])) for r in rows]


def _fmt(value: Any) -> str:
    return f"{value:.2e}" if isinstance(value, float) and value and value < 0.01 else str(value)
