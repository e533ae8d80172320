"""Pre-training from raw text: a recipe, top to bottom.

    corpus -> tokenizer (BPE, trained on it) -> rows (packing / NSP pairs) -> model
    -> AdamW, warm-up + cosine, clipping -> checkpoints, TensorBoard, report

What each architecture learns from the text:

- ``decoder``: causal LM on packed rows (inputs r[:-1], targets r[1:]);
- ``encoder``: masked LM (15 %, 80/10/10) + next-sentence prediction on
  [CLS] A [SEP] B [SEP] pairs, half of them with a random B;
- ``encdec``: denoising (BART's token masking): the encoder reads a row with 15 % of its
  tokens corrupted as for MLM, the decoder writes the original row; or, given a pairs
  file (``pairs``), source → target by teacher forcing (see seq2seq.py).

The run folder (``out``) holds everything needed to continue: run.json (the config),
tokenizer.json, checkpoints/step-N (weights, optimizer, RNG, counters), best.safetensors
(the weights of the lowest validation loss so far: what the run's model is, exported and
loaded by :func:`load_run`; training resumes from the last checkpoint), tensorboard/,
report.json, and for the decoder hf/ and, when asked, decoder.gguf (see export.py). A batch
is a function of the seed and the step alone, so a resumed run draws the same batches it
would have drawn.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from dialoop.errors import InvalidInputError
from dialoop.train.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from dialoop.transformer.config import TransformerConfig
from dialoop.transformer.data import bundled_corpus, pack, read_corpus, split_sentences
from dialoop.transformer.models import Encoder, build_model
from dialoop.transformer.objectives import encoder_example, mask_tokens, nsp_pairs
from dialoop.transformer.schedule import learning_rate
from dialoop.transformer.seq2seq import Seq2Seq, pair_rows, read_pairs
from dialoop.transformer.tokenizer import Specials, load_tokenizer, train_tokenizer

__all__ = ["Arch", "PretrainConfig", "load_run", "pretrain"]

log = logging.getLogger(__name__)

Arch = Literal["encoder", "decoder", "encdec"]
_POSITIONS = {"decoder": "rope", "encoder": "learned", "encdec": "sinusoidal"}
_DEFAULT_STEPS = 200
BEST_WEIGHTS = "best.safetensors"  # the weights of the lowest validation loss so far


@dataclass(frozen=True)
class PretrainConfig:
    arch: Arch
    out: Path
    data: tuple[Path, ...] = ()  # empty: the bundled corpus
    pairs: Path | None = None  # encdec only: source/target pairs instead of denoising
    steps: int | None = None  # None and no minutes: 200
    minutes: float | None = None  # stop after this much training time (this invocation)
    resume: bool = False
    gguf: bool = False  # the decoder also as out/decoder.gguf, for llama.cpp
    # the model (a small default: a minute or two on a laptop CPU)
    vocab_size: int = 1024
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int = 384
    fast_attention: bool = True  # torch's fused kernel; the written-out one is the reference
    # the optimisation
    batch_size: int = 8
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int = 50
    eval_rows: int = 64  # validation rows per evaluation, at most
    save_every: int = 50
    validation_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        problems = [
            (self.arch not in _POSITIONS, f"arch {self.arch!r}: choose encoder, decoder or encdec"),
            (self.steps is not None and self.steps < 1, "--steps must be at least 1"),
            (self.minutes is not None and self.minutes <= 0, "--minutes must be positive"),
            (self.batch_size < 1, "batch_size must be at least 1"),
            (not 0 < self.validation_fraction < 1, "validation_fraction must be in (0, 1)"),
            (self.pairs is not None and self.arch != "encdec",
             f"--pairs trains the encoder-decoder, not the {self.arch}: use --arch encdec"),
            (self.pairs is not None and bool(self.data),
             "Can't provide both --data and --pairs. Choose one"),
            (self.gguf and self.arch != "decoder",
             f"--gguf exports a decoder, not an {self.arch} (llama.cpp has no such "
             "architecture): drop --gguf or use --arch decoder"),
        ]
        for bad, message in problems:
            if bad:
                raise InvalidInputError(f"{message}.")

    def model_config(self) -> TransformerConfig:
        return TransformerConfig(
            vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
            n_head=self.n_head, d_model=self.d_model, d_ff=self.d_ff,
            position=_POSITIONS[self.arch], pad_id=Specials.pad,  # type: ignore[arg-type]
            fast_attention=self.fast_attention,
        )


def pretrain(config: PretrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Train (or continue training) ``config.arch`` and return the report (also written to
    ``out/report.json``)."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    config, tokenizer, checkpoint = _open_run(config)
    documents = _documents(config)
    model_config = config.model_config()
    train_rows, val_rows = _split(_rows(config, documents, tokenizer), config)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, model_config)
    optimizer = _optimizer(model, config)
    state: dict[str, Any] = {"step": 0, "tokens": 0, "train_seconds": 0.0, "evals": [],
                             "resumed_from": []}
    if checkpoint is not None:
        model.load_state_dict(checkpoint.weights)
        optimizer.load_state_dict(checkpoint.optimizer)
        torch.set_rng_state(checkpoint.rng)
        state = {**checkpoint.state, "resumed_from": [*checkpoint.state["resumed_from"],
                                                      checkpoint.step]}
    steps = config.steps or (None if config.minutes else _DEFAULT_STEPS)
    budget = config.minutes * 60 if config.minutes else None
    writer = SummaryWriter(str(config.out / "tensorboard"), purge_step=state["step"] or None)
    bar = tqdm(total=steps, initial=state["step"], disable=not progress, unit="step",
               desc=f"pretrain {config.arch}")
    started, recent = time.perf_counter(), []
    model.train()
    while True:
        step, elapsed = state["step"], time.perf_counter() - started
        if (steps is not None and step >= steps) or (budget is not None and elapsed >= budget):
            break
        done = max(step / steps if steps else 0.0, elapsed / budget if budget else 0.0)
        lr = learning_rate(step, _after_warmup(done, step, steps, config.warmup_steps),
                           lr_max=config.lr, lr_min=config.lr * config.min_lr_ratio,
                           warmup=config.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        batch = _batch(config.arch, train_rows, _step_generator(config.seed, step),
                       config.batch_size, model_config)
        try:
            loss, _ = _loss(config.arch, model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
        except KeyboardInterrupt:  # keep what is done: --resume continues from here
            bar.close()
            if state["step"] and _checkpoint_step(config.out) != state["step"]:
                _save(config, model, optimizer, state)
            raise
        state["train_seconds"] += time.perf_counter() - t0
        state["tokens"] += _n_tokens(batch)
        state["step"] = step = step + 1
        recent = (recent + [loss.item()])[-20:]
        writer.add_scalar("train/loss", loss.item(), step)
        writer.add_scalar("train/lr", lr, step)
        writer.add_scalar("train/grad_norm", float(grad_norm), step)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
        if step % config.eval_every == 0:
            _evaluate(config, model, val_rows, model_config, state, writer, recent)
        if step % config.save_every == 0:
            _save(config, model, optimizer, state)
    bar.close()
    if not state["evals"] or state["evals"][-1]["step"] != state["step"]:
        _evaluate(config, model, val_rows, model_config, state, writer, recent)
    if _checkpoint_step(config.out) != state["step"]:
        _save(config, model, optimizer, state)
    writer.close()
    _load_best(model, config.out)  # past its best, a model has started to learn by heart
    report = _report(config, model, state, documents, tokenizer, train_rows, val_rows)
    if config.arch == "decoder":
        from dialoop.transformer.export import export_gguf, export_hf

        report["hf_export"] = str(export_hf(model, tokenizer, config.out / "hf"))  # type: ignore[arg-type]
        if config.gguf:
            path = export_gguf(model, tokenizer, config.out / "decoder.gguf")  # type: ignore[arg-type]
            report["gguf_export"] = str(path)
    if config.pairs is not None:
        report["generation"] = _generation(model, tokenizer, config, len(val_rows["source"]))  # type: ignore[arg-type]
    (config.out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def _generation(model: nn.Module, tokenizer: Any, config: PretrainConfig, n_val: int
                ) -> dict[str, Any]:
    """Greedy outputs for (up to eval_rows of) the validation pairs: exact matches, and a
    few examples to read."""
    assert config.pairs is not None
    pairs = read_pairs(config.pairs)[-n_val:][: config.eval_rows]
    outputs = Seq2Seq(model, tokenizer).generate_many([s for s, _ in pairs])  # type: ignore[arg-type]
    exact = sum(o == t for o, (_, t) in zip(outputs, pairs, strict=True)) / len(pairs)
    return {"exact_match": exact, "pairs": len(pairs),
            "examples": [{"source": s, "target": t, "output": o}
                         for (s, t), o in list(zip(pairs, outputs, strict=True))[:3]]}


def load_run(out: Path, arch: Arch) -> tuple[nn.Module, Any, PretrainConfig]:
    """The model of the run in ``out`` (its best weights, in eval mode), its tokenizer
    and its config; ``arch`` is what the caller needs."""
    run_file, last = out / "run.json", latest_checkpoint(out)
    if not run_file.is_file() or last is None:
        raise InvalidInputError(f"{out} is not a pre-training run (no run.json and "
                                f"checkpoint): make one with `dialoop train pretrain --arch "
                                f"{arch} --out {out}`.")
    saved = json.loads(run_file.read_text())
    if saved["arch"] != arch:
        raise InvalidInputError(f"{out} holds a {saved['arch']} run, not the {arch} this "
                                f"needs: pre-train one with --arch {arch}.")
    saved.update(_paths(saved), out=out)
    config = PretrainConfig(**saved)
    model = build_model(arch, config.model_config())
    if not _load_best(model, out):  # a run from before best weights were kept
        model.load_state_dict(load_checkpoint(last).weights)
    return model.eval(), load_tokenizer(out / "tokenizer.json"), config


def _checkpoint_step(out: Path) -> int | None:
    path = latest_checkpoint(out)
    return None if path is None else int(path.name.split("-")[1])


def _after_warmup(done: float, step: int, steps: int | None, warmup: int) -> float:
    """The fraction of the post-warm-up run done (by steps when counted in steps)."""
    if steps is not None and steps > warmup:
        return max(done, (step - warmup) / (steps - warmup))
    return done


def _open_run(config: PretrainConfig) -> tuple[PretrainConfig, Any, Checkpoint | None]:
    """A new run folder, or the run in it to continue (its own config, with the new
    limits)."""
    run_file, tok_file = config.out / "run.json", config.out / "tokenizer.json"
    if config.resume:
        last = latest_checkpoint(config.out)
        if last is None or not run_file.is_file():
            raise InvalidInputError(f"Nothing to resume in {config.out}: no checkpoint there. "
                                    "Run without --resume to start.")
        saved = json.loads(run_file.read_text())
        saved.update(_paths(saved), out=config.out,
                     steps=config.steps or saved["steps"], minutes=config.minutes,
                     resume=True, threads=config.threads, gguf=config.gguf)
        if saved["arch"] != config.arch:
            raise InvalidInputError(f"{config.out} holds a {saved['arch']} run, not "
                                    f"{config.arch}: resume it with --arch {saved['arch']}.")
        return PretrainConfig(**saved), load_tokenizer(tok_file), load_checkpoint(last)
    if latest_checkpoint(config.out) is not None:
        raise InvalidInputError(f"{config.out} already holds a run: add --resume to continue "
                                "it, or choose another --out.")
    tokenizer = train_tokenizer(_documents(config), config.vocab_size)
    config = replace(config, vocab_size=tokenizer.get_vocab_size())
    config.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(tok_file))
    saved = {**asdict(config), "out": str(config.out),
             "data": [str(p.resolve()) for p in config.data],
             "pairs": config.pairs and str(config.pairs.resolve())}
    run_file.write_text(json.dumps(saved, indent=1))
    return config, tokenizer, None


def _paths(saved: dict[str, Any]) -> dict[str, Any]:
    """The paths of a run.json, as PretrainConfig holds them."""
    pairs = saved.get("pairs")
    return {"data": tuple(Path(p) for p in saved["data"]), "pairs": pairs and Path(pairs)}


def _documents(config: PretrainConfig) -> list[str]:
    """The texts to train the tokenizer on and to count: the corpus, or the pairs' sides."""
    if config.pairs is not None:
        return [text for pair in read_pairs(config.pairs) for text in pair]
    return read_corpus(list(config.data) or [bundled_corpus()])


def _rows(config: PretrainConfig, documents: list[str], tokenizer: Any) -> dict[str, torch.Tensor]:
    """The whole corpus as training examples (tensors with one row per example)."""
    T = config.block_size
    if config.pairs is not None:
        return pair_rows(read_pairs(config.pairs), tokenizer, T)
    if config.arch == "encoder":
        sentences = [[tokenizer.encode(s).ids for s in split_sentences(d)] for d in documents]
        pairs = nsp_pairs(sentences, segment_tokens=(T - 3) // 2,
                          rng=random.Random(config.seed))
        examples = [encoder_example(p, block_size=T, cls_id=Specials.cls, sep_id=Specials.sep,
                                    pad_id=Specials.pad) for p in pairs]
        # .view(-1, T): (N, T) even when there are no pairs at all
        return {"ids": torch.tensor([e[0] for e in examples], dtype=torch.long).view(-1, T),
                "segments": torch.tensor([e[1] for e in examples], dtype=torch.long).view(-1, T),
                "nsp": torch.tensor([int(p.is_random) for p in pairs], dtype=torch.long)}  # (N,)
    encoded = [tokenizer.encode(d).ids for d in documents]
    # the decoder needs one token more per row: its targets are the inputs shifted by one
    return {"rows": pack(encoded, T + 1 if config.arch == "decoder" else T, Specials.eos)}


def _split(rows: dict[str, torch.Tensor], config: PretrainConfig
           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The last ``validation_fraction`` of the examples (the end of the corpus) for validation."""
    n = len(next(iter(rows.values())))
    n_val = max(1, round(n * config.validation_fraction))
    if n - n_val < 1:
        what = ("sentence pairs" if config.arch == "encoder"
                else f"rows of {config.block_size} tokens")
        raise InvalidInputError(f"The corpus is too small: it makes {n} {what}, and training "
                                "needs at least 2 (one to validate on). Give more text.")
    return ({k: v[: n - n_val] for k, v in rows.items()},
            {k: v[n - n_val:] for k, v in rows.items()})


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _batch(arch: str, rows: dict[str, torch.Tensor], generator: torch.Generator,
           batch_size: int | None, model_config: TransformerConfig) -> dict[str, torch.Tensor]:
    """A batch: ``batch_size`` rows drawn with ``generator`` (None: all rows, in order),
    with the objective's inputs and targets."""
    n = len(next(iter(rows.values())))
    index = torch.arange(n) if batch_size is None else \
        torch.randint(n, (batch_size,), generator=generator)
    masking = dict(mask_id=Specials.mask, special_ids=Specials.all,
                   vocab_size=model_config.vocab_size, generator=generator)
    if arch == "decoder":
        r = rows["rows"][index]  # (B, T + 1)
        return {"ids": r[:, :-1], "targets": r[:, 1:]}  # (B, T) each
    if arch == "encoder":
        ids, labels = mask_tokens(rows["ids"][index], **masking)  # type: ignore[arg-type]
        return {"ids": ids, "segments": rows["segments"][index], "mlm_labels": labels,
                "nsp_labels": rows["nsp"][index]}
    if "source" in rows:  # pairs: teacher forcing as they are
        return {k: v[index] for k, v in rows.items()}
    r = rows["rows"][index]  # (B, T): the text to restore
    source, _ = mask_tokens(r, **masking)  # type: ignore[arg-type]
    bos = torch.full_like(r[:, :1], Specials.bos)
    return {"source": source, "target_in": torch.cat([bos, r[:, :-1]], dim=1), "targets": r}


def _loss(arch: str, model: nn.Module, batch: dict[str, torch.Tensor]
          ) -> tuple[torch.Tensor, dict[str, float]]:
    if arch == "encoder":
        out = model(batch["ids"], batch["segments"], batch["mlm_labels"], batch["nsp_labels"])
        correct = (out.nsp_logits.argmax(-1) == batch["nsp_labels"]).float().mean()
        return out.loss, {"mlm_loss": out.mlm_loss.item(), "nsp_accuracy": correct.item()}
    if arch == "decoder":
        _, loss = model(batch["ids"], batch["targets"])
    else:
        _, loss = model(batch["source"], batch["target_in"], batch["targets"])
    return loss, {}


def _n_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens the model read in a step (source and target for the encoder–decoder)."""
    return sum(batch[k].numel() for k in ("ids", "source", "target_in") if k in batch)


@torch.no_grad()
def _evaluate(config: PretrainConfig, model: nn.Module, val_rows: dict[str, torch.Tensor],
              model_config: TransformerConfig, state: dict[str, Any], writer: Any,
              recent: list[float]) -> None:
    """Mean validation loss (and perplexity) over the same validation rows every time."""
    model.eval()
    rows = {k: v[: config.eval_rows] for k, v in val_rows.items()}
    batch = _batch(config.arch, rows, _step_generator(config.seed + 1, -1), None, model_config)
    loss, extra = _loss(config.arch, model, batch)
    model.train()
    lm_loss = extra.get("mlm_loss", loss.item())  # perplexity of the language model part
    entry = {"step": state["step"], "train_loss": sum(recent) / len(recent) if recent else None,
             "validation_loss": loss.item(), "validation_perplexity": math.exp(lm_loss), **extra}
    state["evals"].append(entry)
    for key, value in entry.items():
        if key != "step" and value is not None:
            writer.add_scalar(f"validation/{key}", value, state["step"])
    log.info("step %d: %s", state["step"], entry)
    if entry["validation_loss"] <= min(e["validation_loss"] for e in state["evals"]):
        from safetensors.torch import save_model  # handles the tied embedding / output

        partial = config.out / (BEST_WEIGHTS + ".partial")
        save_model(model, str(partial))
        partial.replace(config.out / BEST_WEIGHTS)  # atomic: never half a model


def _load_best(model: nn.Module, out: Path) -> bool:
    """Put the run's best weights (lowest validation loss) on ``model``, if it has them."""
    from safetensors.torch import load_model

    if not (out / BEST_WEIGHTS).is_file():
        return False
    load_model(model, str(out / BEST_WEIGHTS))
    return True


def _optimizer(model: nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (not on norms and biases)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.lr, betas=(0.9, 0.95))


def _save(config: PretrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
          state: dict[str, Any]) -> None:
    save_checkpoint(config.out, Checkpoint(
        path=config.out, weights=model.state_dict(), optimizer=optimizer.state_dict(),
        scheduler={"step": state["step"]}, rng=torch.get_rng_state(), state=dict(state)))


def _report(config: PretrainConfig, model: nn.Module, state: dict[str, Any],
            documents: list[str], tokenizer: Any, train_rows: dict[str, torch.Tensor],
            val_rows: dict[str, torch.Tensor]) -> dict[str, Any]:
    last = state["evals"][-1]
    best = min(state["evals"], key=lambda e: e["validation_loss"])
    report = {
        "arch": config.arch, "out": str(config.out),
        "parameters": sum(p.numel() for p in model.parameters()),
        "model": asdict(config.model_config()),
        "corpus": {"files": ([str(config.pairs)] if config.pairs else
                             [str(p) for p in config.data] or [str(bundled_corpus())]),
                   "documents": len(documents),
                   "train_examples": len(next(iter(train_rows.values()))),
                   "validation_examples": len(next(iter(val_rows.values()))),
                   "vocab_size": tokenizer.get_vocab_size()},
        "steps": state["step"], "tokens": state["tokens"],
        "train_seconds": round(state["train_seconds"], 2),
        "tokens_per_second": state["tokens"] / max(state["train_seconds"], 1e-9),
        "train_loss": last["train_loss"], "validation_loss": last["validation_loss"],
        "validation_perplexity": last["validation_perplexity"],
        "best_validation": {"step": best["step"], "loss": best["validation_loss"],
                            "perplexity": best["validation_perplexity"]},
        "kept_step": best["step"],  # the weights exported and loaded (best.safetensors)
        "resumed_from": state["resumed_from"], "evals": state["evals"],
        "checkpoint": str(latest_checkpoint(config.out)),
    }
    if isinstance(model, Encoder):
        report["nsp_accuracy"] = last["nsp_accuracy"]
    return report
