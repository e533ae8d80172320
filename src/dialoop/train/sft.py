"""Supervised fine-tuning on multi-turn dialogues, as one recipe read top to bottom.

    from dialoop.train.sft import SFTConfig, train_sft

    result = train_sft(SFTConfig(name="store-support", train_file=Path("train.jsonl"),
                                 validation_file=Path("validation.jsonl")), settings)
    print(result.adapter.key)          # "store-support@v1", serving at once

What happens, in order:

1. the dialogues are read and checked (``data.py``), tokenized with the model's own
   chat template with loss only on the assistant's tokens, every assistant turn
   (``chat_data.py``), and packed into rows with no padding (``packing.py``);
2. the model gets the parameters of a fine-tuning method (``peft_methods.py``: LoRA,
   AdaLoRA, IA³, prefix or prompt tuning through PEFT, bottleneck adapters) or is
   trained whole;
3. AdamW, linear warmup then cosine decay, gradient accumulation, clipping, a seed;
   the validation loss is measured every ``eval_every`` steps, the best weights are
   kept, and training stops after ``patience`` evaluations without improvement;
4. a checkpoint every ``save_every`` steps (and on Ctrl-C) lets ``resume=True``
   continue exactly where the run stopped: same weights, optimizer and scheduler
   state, random state and position in the data;
5. a progress bar (loss, tokens/s), TensorBoard logs (and Weights & Biases, offline,
   when ``wandb`` is installed), a report (JSON, Markdown and the loss curve as a PNG),
   and the best adapter registered in the adapter store (the same store consolidation
   uses) and promoted, so `dialoop chat --adapter NAME` serves it (LoRA and AdaLoRA on
   llama.cpp and torch, IA³, prefix, prompt and bottleneck adapters on the torch engine
   only; a full fine-tune is a model folder: the report says where each serves).

Why this loop is written out rather than run by transformers' ``Trainer`` or TRL's
``SFTTrainer``: the numerics all come from the libraries (torch's AdamW and
gradient clipping, transformers' cosine schedule and models, PEFT's LoRA, the
model's own packed-sequence attention), but the Trainer cannot take loss on only
the positions that have a target (``logits_to_keep``: the 49k-token output layer
is a sixth of the compute), pads every batch instead of packing to a token budget,
has no tokens/s on its progress bar, and SFTTrainer's assistant-only loss needs
``{% generation %}`` markers that most chat templates lack. ``benchmarks/bench_train.py``
measures the difference against a plain Trainer on the same data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch

from dialoop.config import Settings
from dialoop.engine.models import resolve_model
from dialoop.engine.torch import load_model
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import open_database
from dialoop.store.adapters import AdapterStore, AdapterVersion, check_name
from dialoop.train.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from dialoop.train.data import load_dialogues, split_dialogues
from dialoop.train.packing import PackedRow, encode_dialogues, pack, row_loss
from dialoop.train.peft_methods import (
    ALL_PROJECTIONS,
    DEFAULT_TARGETS,
    GGUF_METHODS,
    METHODS,
    PROMPT_METHODS,
    SERVED_METHODS,
    after_step,
    make_trainable,
    regularizer,
    save_method,
    serving_note,
    unpacked_rows,
)
from dialoop.train.report import write_report

__all__ = [
    "ALL_PROJECTIONS", "Prepared", "SFTConfig", "SFTResult", "StepInfo", "autocast",
    "evaluate_rows", "make_optimizer", "prepare", "total_steps", "train_sft",
]

log = logging.getLogger(__name__)

Method = Literal["lora", "adalora", "ia3", "prefix", "prompt", "adapter", "full"]
# Options that may differ when a run is resumed; every other one must match.
_RESUMABLE_CHANGES = {"resume", "threads", "promote", "run_dir"}


@dataclass(frozen=True)
class SFTConfig:
    """Everything a run depends on. Invalid values fail here, before any work."""

    name: str  # the adapter line the result is registered as
    train_file: Path
    validation_file: Path | None = None
    validation_fraction: float = 0.1  # held out of train_file when no validation_file
    model: str = "default"
    method: Method = "lora"
    lora_r: int = 16  # lora: the rank; adalora: the average rank it prunes to
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # lora, adalora, ia3 (None: the method's)
    virtual_tokens: int = 20  # prefix, prompt
    bottleneck: int = 64  # adapter: features in the middle of each bottleneck MLP
    epochs: int = 3
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    grad_accum: int = 4  # packed rows per optimizer step
    pack_length: int = 1024  # tokens per packed row (also the longest dialogue kept)
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_every: int = 20
    save_every: int = 20
    patience: int = 3  # evaluations without a better validation loss before stopping
    min_delta: float = 0.0  # how much lower a validation loss must be to count as better
    train_on: Literal["assistant", "last"] = "assistant"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    threads: int | None = None
    promote: bool = True  # make the result the adapter that serves
    resume: bool = False
    run_dir: Path | None = None  # default: $DIALOOP_HOME/runs/<name>/<time>

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.method in METHODS and self.target_modules is None:
            # frozen: set once here, so config.json (and a resume's check) holds the list
            object.__setattr__(self, "target_modules", DEFAULT_TARGETS.get(self.method, ()))
        problems = [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.lora_r >= 1, "lora_r must be at least 1"),
            (self.lora_alpha > 0, "lora_alpha must be positive"),
            (0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)"),
            (bool(self.target_modules) or self.method not in DEFAULT_TARGETS,
             "name at least one target module"),
            (not self.target_modules or self.method in DEFAULT_TARGETS,
             f"target modules apply to {', '.join(DEFAULT_TARGETS)}, not to {self.method}"),
            (self.virtual_tokens >= 1, "virtual_tokens must be at least 1"),
            (self.bottleneck >= 1, "bottleneck must be at least 1"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.grad_accum >= 1, "grad_accum must be at least 1"),
            (self.pack_length >= 16, "pack_length must be at least 16 tokens"),
            (self.max_grad_norm > 0, "max_grad_norm must be positive"),
            (self.eval_every >= 1 and self.save_every >= 1,
             "eval_every and save_every must be at least 1"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.precision in ("auto", "bf16", "fp32"), "precision must be auto, bf16 or fp32"),
            (self.threads is None or self.threads >= 1, "threads must be at least 1"),
            (0 <= self.validation_fraction < 1, "validation_fraction must be in [0, 1)"),
        ]
        for ok, message in problems:
            if not ok:
                raise InvalidInputError(f"Invalid training option: {message}.")
        if self.validation_file is not None and self.validation_fraction not in (0, 0.1):
            raise InvalidInputError(
                "Give either a validation file or a validation fraction, not both."
            )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, Path):
                out[k] = str(v)
            elif isinstance(v, tuple):
                out[k] = list(v)
        return out


@dataclass(frozen=True)
class StepInfo:
    """What ``on_step`` hears after every optimizer step."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float
    tokens_per_second: float
    val_loss: float | None  # when this step was evaluated


@dataclass(frozen=True)
class SFTResult:
    run_dir: Path
    report: dict[str, Any]
    adapter: AdapterVersion | None  # None for method full (a model folder, not an adapter)
    output: Path  # the trained adapter (or model) folder


def train_sft(
    config: SFTConfig,
    settings: Settings,
    *,
    progress: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> SFTResult:
    """Fine-tune ``config.model`` on ``config.train_file``; register and return the result."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, settings, progress, on_step)
    finally:
        torch.set_num_threads(threads)  # the setting holds for this run only


@dataclass
class Prepared:
    """A run's inputs, loaded and checked: the base model and the rows it trains on."""

    source: Any  # the resolved ModelSource
    model: Any  # the base model, not yet made trainable
    tokenizer: Any
    train_rows: list[PackedRow]
    val_rows: list[PackedRow]
    data: dict[str, Any]  # statistics for the report


def prepare(config: SFTConfig, settings: Settings) -> Prepared:
    """Step 1: read, check, tokenize and pack the data; load the base model. Writes nothing."""
    source = resolve_model(config.model, home=settings.home)
    train_dialogues = load_dialogues(config.train_file)
    if config.validation_file is not None:
        val_dialogues = load_dialogues(config.validation_file)
    else:
        train_dialogues, val_dialogues = split_dialogues(
            train_dialogues, config.validation_fraction, config.seed
        )
    model, tokenizer = load_model(source, settings.home / "cache" / "models")
    if not tokenizer.chat_template:
        raise InvalidInputError(f"{source.name} has no chat template; train a chat model.")

    def rows(dialogues: list[Any]) -> list[PackedRow]:
        encoded = encode_dialogues(tokenizer, dialogues, max_length=config.pack_length,
                                   train_on=config.train_on)
        if config.method in PROMPT_METHODS:
            return unpacked_rows(encoded, config.method, config.virtual_tokens)
        return pack(encoded, config.pack_length, config.seed)

    train_rows, val_rows = rows(train_dialogues), rows(val_dialogues)
    if not train_rows:
        raise InvalidInputError(f"{config.train_file} has no dialogue left to train on.")
    data = _data_stats(train_dialogues, val_dialogues, train_rows, val_rows, config)
    log.info("training on %(train_dialogues)d dialogues (%(train_tokens)d tokens, "
             "%(train_targets)d assistant tokens) in %(train_rows)d rows", data)
    return Prepared(source, model, tokenizer, train_rows, val_rows, data)


def total_steps(config: SFTConfig, n_rows: int) -> int:
    """Optimizer steps of the whole run."""
    return config.max_steps or math.ceil(n_rows / config.grad_accum) * config.epochs


def _run(
    config: SFTConfig,
    settings: Settings,
    progress: bool,
    on_step: Callable[[StepInfo], None] | None,
) -> SFTResult:
    started = time.perf_counter()

    # -- 1. data (checked before anything is written) ---------------------------------------
    prepared = prepare(config, settings)
    source, tokenizer, data = prepared.source, prepared.tokenizer, prepared.data

    # -- 2. the trainable model ----------------------------------------------------------
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = _make_trainable(prepared.model, config, total_steps(config, len(prepared.train_rows)))
    run_dir = _run_dir(config, settings)  # the first thing written
    _check_same_data(run_dir, config)

    # -- 3.-4. the loop ------------------------------------------------------------------
    outcome = _train(model, prepared.train_rows, prepared.val_rows, config, run_dir, progress,
                     on_step)

    # -- 5. report and registration ------------------------------------------------------
    output = _output_dir(run_dir, config)
    if config.method == "full":
        tokenizer.save_pretrained(output)
    report = {
        "name": config.name,
        "model": config.model,
        "model_name": source.name,
        "method": config.method,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "serving": serving_note(config.method),
        "run_dir": str(run_dir),
        "data": data,
        "config": config.to_json(),
        **outcome,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "precision": "bf16" if _use_bf16(config.precision) else "fp32",
    }
    adapter = None
    if config.method in SERVED_METHODS:
        # Only the LoRA family gets a GGUF form; without one, the store refuses to hand an
        # adapter to llama.cpp ("has no GGUF form; use --engine torch for it").
        gguf = source.gguf if config.method in GGUF_METHODS else None
        adapter = _register(settings, config, output, gguf, report)
        report["adapter"] = adapter.key
        report["promoted"] = config.promote
    write_report(report, run_dir)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # a finished run is not resumed
    return SFTResult(run_dir, report, adapter, output)


def _output_dir(run_dir: Path, config: SFTConfig) -> Path:
    return run_dir / ("model" if config.method == "full" else "adapter")


# -- the loop ------------------------------------------------------------------------------


def _train(
    model: Any,
    rows: list[PackedRow],
    val_rows: list[PackedRow],
    config: SFTConfig,
    run_dir: Path,
    progress: bool,
    on_step: Callable[[StepInfo], None] | None,
) -> dict[str, Any]:
    """Optimizer steps until done or stopped early; the best weights end in run_dir."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(len(rows) / config.grad_accum)
    total = total_steps(config, len(rows))
    optimizer = make_optimizer(params, config)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * total), total
    )
    best_dir = _output_dir(run_dir, config)
    state: dict[str, Any] = {
        "step": 0, "best_val_loss": None, "best_step": None, "bad_evals": 0,
        "stopped_early": False, "train_tokens_seen": 0, "train_seconds": 0.0,
        "history": [], "evals": [], "resumed_from": [],
    }
    if config.resume:
        ckpt = load_checkpoint(_checkpoint_to_resume(run_dir))
        _load_trainable(model, ckpt.weights)
        optimizer.load_state_dict(ckpt.optimizer)
        scheduler.load_state_dict(ckpt.scheduler)
        torch.set_rng_state(ckpt.rng)
        state = ckpt.state
        state["resumed_from"].append(ckpt.step)
        log.info("resumed %s from step %d", run_dir, ckpt.step)
    writer = SummaryWriter(str(run_dir / "tensorboard"),
                           purge_step=state["step"] if config.resume else None)
    wandb_run = _wandb_run(config, run_dir)

    def scalars(values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            writer.add_scalar(k, v, step)
        if wandb_run is not None:
            wandb_run.log(values, step=step)
    amp = autocast(config.precision)

    def checkpoint() -> None:
        weights = {n: p for n, p in model.named_parameters() if p.requires_grad}
        save_checkpoint(run_dir, Checkpoint(run_dir, weights, optimizer.state_dict(),
                                            scheduler.state_dict(), rng_at_step, state))
        state_saved[0] = state["step"]

    def validate() -> dict[str, float]:
        with amp():
            result = evaluate_rows(model, val_rows)
        state["evals"].append({"step": state["step"], **result})
        scalars({f"validation/{k}": v for k, v in result.items()}, state["step"])
        return result

    rng_at_step = torch.get_rng_state()  # the random state as of the last completed step
    state_saved = [state["step"]]
    if val_rows and not state["evals"]:
        validate()  # step 0: the base model's validation loss starts the curve
        state["best_val_loss"], state["best_step"] = state["evals"][0]["loss"], 0
        _save_weights(model, best_dir, config.method)  # what is kept if no step does better
    bar = tqdm(total=total, initial=state["step"], disable=not progress, unit="step",
               dynamic_ncols=True, desc=f"sft {config.name}")
    updating = False
    try:
        while state["step"] < total and not state["stopped_early"]:
            epoch, k = divmod(state["step"], steps_per_epoch)
            order = _epoch_order(len(rows), config.seed, epoch)
            group = [rows[i] for i in order[k * config.grad_accum:(k + 1) * config.grad_accum]]
            n_targets = sum(r.n_targets for r in group)
            start = time.perf_counter()
            model.train()
            loss_sum = 0.0
            for row in group:
                with amp():
                    loss, _ = row_loss(model, row)
                # Divide by the group's target count, not the row's: every assistant
                # token weighs the same however the rows were packed.
                (loss / n_targets).backward()
                loss_sum += loss.detach().item()
            penalty = regularizer(model, config.method)  # AdaLoRA's, once per step
            if penalty is not None:
                penalty.backward()
            lr = scheduler.get_last_lr()[0]
            updating = True
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
            optimizer.step()
            scheduler.step()
            after_step(model, config.method, state["step"] + 1)  # reads the gradients
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            updating = False
            rng_at_step = torch.get_rng_state()
            seconds = time.perf_counter() - start
            tokens = sum(r.n_tokens for r in group)
            state["train_tokens_seen"] += tokens
            state["train_seconds"] += seconds
            step, loss_mean = state["step"], loss_sum / n_targets
            record = {"step": step, "loss": round(loss_mean, 5), "learning_rate": lr,
                      "grad_norm": round(grad_norm, 4), "tokens_per_second": tokens / seconds}
            state["history"].append(record)
            scalars({f"train/{key}": record[key]
                     for key in ("loss", "learning_rate", "grad_norm", "tokens_per_second")},
                    step)

            val_loss = None
            if val_rows and (step % config.eval_every == 0 or step == total):
                val_loss = validate()["loss"]
                if val_loss < state["best_val_loss"] - config.min_delta:
                    state["best_val_loss"], state["best_step"], state["bad_evals"] = \
                        val_loss, step, 0
                    _save_weights(model, best_dir, config.method)
                else:
                    state["bad_evals"] += 1
                    if state["bad_evals"] >= config.patience:
                        state["stopped_early"] = True
                        log.info("early stop at step %d: no better validation loss in %d "
                                 "evaluations (best %.4f at step %d)", step, config.patience,
                                 state["best_val_loss"], state["best_step"])
            if step % config.save_every == 0 or step == total or state["stopped_early"]:
                checkpoint()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_mean:.3f}", lr=f"{lr:.1e}",
                            tok_s=f"{tokens / seconds:.0f}",
                            **({"val": f"{val_loss:.3f}"} if val_loss is not None else {}))
            if on_step is not None:
                on_step(StepInfo(step, total, step / steps_per_epoch, loss_mean, lr,
                                 tokens / seconds, val_loss))
    except KeyboardInterrupt:
        # Keep what was done: the weights are those of the last completed step
        # (unless the interrupt came in the middle of the update itself).
        if not updating and state_saved[0] != state["step"]:
            checkpoint()
        log.warning("interrupted at step %d of %d; continue with resume", state["step"], total)
        raise
    finally:
        bar.close()
        writer.close()
        if wandb_run is not None:
            wandb_run.finish()

    kept = state["best_step"]
    if not val_rows:  # nothing to choose by: keep the last weights
        _save_weights(model, best_dir, config.method)
        kept = state["step"]
    return {
        "steps": state["step"],
        "total_steps": total,
        "steps_per_epoch": steps_per_epoch,
        "epochs_done": round(state["step"] / steps_per_epoch, 2),
        "best_step": state["best_step"],
        "best_val_loss": state["best_val_loss"],
        "kept_step": kept,
        "stopped_early": state["stopped_early"],
        "resumed_from": state["resumed_from"],
        "train_tokens_seen": state["train_tokens_seen"],
        "train_seconds": round(state["train_seconds"], 2),
        "train_tokens_per_second": round(
            state["train_tokens_seen"] / max(state["train_seconds"], 1e-9), 1),
        "history": state["history"],
        "evals": state["evals"],
    }


def make_optimizer(params: list[torch.nn.Parameter], config: SFTConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, with the run's learning rate and weight decay."""
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def _wandb_run(config: SFTConfig, run_dir: Path) -> Any:
    """A Weights & Biases run, offline (files in run_dir/wandb, nothing sent), when wandb is
    installed; None otherwise. ``wandb sync`` uploads it later if wanted."""
    try:
        import wandb
    except ImportError:
        return None
    run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]  # same on resume
    # silent, no console capture (the progress bar stays ours), no system-stats sampler
    quiet = wandb.Settings(console="off", silent=True, x_disable_stats=True,
                           disable_git=True, save_code=False)
    return wandb.init(mode="offline", dir=str(run_dir), project="dialoop",
                      name=f"{config.name}-{run_dir.name}", config=config.to_json(),
                      resume="allow" if config.resume else None, id=run_id, settings=quiet)


def evaluate_rows(model: Any, rows: list[PackedRow]) -> dict[str, float]:
    """Loss, perplexity and token accuracy over the assistant tokens of ``rows``."""
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for row in rows:
            loss, right = row_loss(model, row)
            loss_sum += loss.detach().item()
            correct += right
            n += row.n_targets
    model.train(was_training)
    loss = loss_sum / max(n, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50)),
            "token_accuracy": correct / max(n, 1)}


def autocast(precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A context factory: bf16 mixed precision where the CPU has bf16 arithmetic."""
    if _use_bf16(precision):
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _use_bf16(precision: str) -> bool:
    # bf16 matrix products are ~5x faster than fp32 on CPUs with AVX512-BF16 or AMX,
    # and slower than fp32 on CPUs without (emulated).
    if precision == "auto":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return precision == "bf16"


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order rows are visited in ``epoch``: a function of (seed, epoch) only, so a
    resumed run visits the same rows in the same order."""
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order


# -- the model ---------------------------------------------------------------------------


def _make_trainable(model: Any, config: SFTConfig, total: int = 1) -> Any:
    """The model with the method's parameters trainable (``total``: the run's steps)."""
    return make_trainable(model, config, total)


def _load_trainable(model: Any, weights: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def _save_weights(model: Any, folder: Path, method: str) -> None:
    """Save the adapter (or the whole model) atomically: a reader never sees half of it."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_method(model, partial, method)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _register(
    settings: Settings, config: SFTConfig, folder: Path, base_gguf: Path | None,
    report: dict[str, Any],
) -> AdapterVersion:
    db = open_database(settings.resolved_database_url)
    try:
        store = AdapterStore(db, settings.home)
        summary = {k: report[k] for k in ("steps", "best_step", "best_val_loss", "stopped_early",
                                          "wall_seconds", "run_dir")}
        row = store.add(config.name, folder, source="sft", base_model=config.model,
                        base_gguf=base_gguf, report=summary,
                        meta={"config": config.to_json(), "data": report["data"]})
        if config.promote:
            row = store.promote(row.name, row.version)
        return row
    finally:
        db.close()


# -- run folders ---------------------------------------------------------------------------


def _run_dir(config: SFTConfig, settings: Settings) -> Path:
    """The run's folder: new, or (resume) the newest unfinished run of this name."""
    root = settings.home / "runs" / config.name
    if config.run_dir is not None:
        run_dir = config.run_dir
    elif config.resume:
        unfinished = [d for d in sorted(root.glob("*")) if _unfinished(d)]
        if not unfinished:
            raise NotFoundError(
                f"No interrupted run of {config.name!r} to resume in {root}; "
                "start one without --resume."
            )
        run_dir = unfinished[-1]
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = root / stamp
    if config.resume:
        _checkpoint_to_resume(run_dir)
        _check_same_config(run_dir, config)
    else:
        if _unfinished(run_dir):
            raise InvalidInputError(
                f"{run_dir} holds an interrupted run: pass resume to continue it, "
                "or choose another folder."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=1))
        for unfinished in (d for d in root.glob("*") if d != run_dir and _unfinished(d)):
            log.warning("an interrupted run is in %s; --resume would continue it", unfinished)
    return run_dir


def _unfinished(run_dir: Path) -> bool:
    return latest_checkpoint(run_dir) is not None and not (run_dir / "report.json").is_file()


def _checkpoint_to_resume(run_dir: Path) -> Path:
    path = latest_checkpoint(run_dir)
    if path is None:
        raise NotFoundError(f"{run_dir} has no checkpoint to resume from.")
    return path


def _check_same_config(run_dir: Path, config: SFTConfig) -> None:
    saved = json.loads((run_dir / "config.json").read_text())
    now = config.to_json()
    changed = [f.name for f in fields(config)
               if f.name not in _RESUMABLE_CHANGES and saved.get(f.name) != now[f.name]]
    if changed:
        raise InvalidInputError(
            f"The run in {run_dir} used other settings ({', '.join(changed)}); "
            "resume it with the same options, or start a new run."
        )


def _check_same_data(run_dir: Path, config: SFTConfig) -> None:
    """Remember a fingerprint of the data; a resumed run must see the same files."""
    files = [config.train_file] + ([config.validation_file] if config.validation_file else [])
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).read_bytes())
    marker = run_dir / "data.sha256"
    if config.resume and marker.is_file() and marker.read_text() != digest.hexdigest():
        raise InvalidInputError(
            f"The training data changed since the run in {run_dir} started; "
            "resume with the same files, or start a new run."
        )
    marker.write_text(digest.hexdigest())


def _data_stats(
    train: list[Any], val: list[Any], rows: list[PackedRow], val_rows: list[PackedRow],
    config: SFTConfig,
) -> dict[str, Any]:
    tokens = sum(r.n_tokens for r in rows)
    return {
        "train_file": str(config.train_file),
        "validation_file": str(config.validation_file) if config.validation_file else None,
        "train_dialogues": len(train),
        "validation_dialogues": len(val),
        "train_tokens": tokens,
        "train_targets": sum(r.n_targets for r in rows),
        "train_rows": len(rows),
        "validation_rows": len(val_rows),
        "packing_fill": round(tokens / (len(rows) * config.pack_length), 3),
    }
