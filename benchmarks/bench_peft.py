"""Every fine-tuning method of `dialoop train sft --method`, side by side in one run.

    flock /tmp/dialoop-bench.lock python benchmarks/bench_peft.py [--quick] [--methods lora,ia3]

The bundled model (SmolLM2-135M-Instruct, its dequantized torch twin, loaded as
``train sft`` loads it) is trained by dialoop's own recipe (``train_sft``) once per
method on store_support's SFT dialogues (``examples/store_support/sft``), with the same
data, steps, packing, schedule, seed and threads; only the method and its learning rate
differ (``LR``: each method's usual range). Per method the table gives:

- trainable parameters, and the training loop's own seconds;
- the validation loss (per assistant token) of the weights kept, those of the best
  validation (checked at the start and after the last step), and which step that was;
- held-out BLEU, ROUGE-L and key accuracy (``dialoop.eval.model.generation_metrics``) of
  greedy answers to the last assistant turn of each test dialogue;
- serving speed: answer tokens per second of that answering, prompt processing
  included, on dialoop's torch engine, which loads every method's adapter by its folder
  (prefix and prompt adapters fill its KV cache with their virtual tokens before the
  prompt; bottleneck adapters run from hooks on its MLPs);
- whether the result also serves on llama.cpp (the GGUF LoRA the adapter store made).

``--quick`` trains a few steps on a small subset: it checks that everything runs and
gives rough figures, not the methods' real merits. ``--steps``, ``--train``, ``--test``
and ``--max-new-tokens`` change one part of either size (e.g. a medium run between the
two).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "store_support" / "sft"
METHODS = ("lora", "adalora", "ia3", "prefix", "prompt", "adapter", "full")
LR = {"lora": 1e-3, "adalora": 1e-3, "ia3": 3e-3, "prefix": 1e-2, "prompt": 3e-2,
      "adapter": 1e-3, "full": 1e-4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few steps on a small subset (a smoke run, rough figures)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: steadier on a shared machine)")
    for flag, help_ in (("--steps", "optimizer steps"), ("--train", "training dialogues"),
                        ("--test", "test dialogues answered"),
                        ("--max-new-tokens", "longest answer")):
        parser.add_argument(flag, type=int, help=f"{help_} (overrides the size's own)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        sys.exit(f"unknown methods: {', '.join(sorted(unknown))}")
    size = (dict(train=32, validation=8, test=6, steps=8, grad_accum=1, pack_length=256,
                 max_new_tokens=32) if args.quick else
            dict(train=240, validation=30, test=30, steps=120, grad_accum=2, pack_length=512,
                 max_new_tokens=96))
    for key in ("steps", "train", "test", "max_new_tokens"):
        if getattr(args, key) is not None:
            if getattr(args, key) < 1:
                sys.exit(f"--{key.replace('_', '-')} must be at least 1")
            size[key] = getattr(args, key)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DIALOOP_HOME"] = str(Path(tmp) / "home")
        os.environ["HF_HUB_OFFLINE"] = "1"
        files = {split: _subset(split, size[split], Path(tmp)) for split in
                 ("train", "validation", "test")}
        rows = [_base_row(files, size, args.threads)]
        for method in methods:
            rows.append(_method_row(method, files, size, args.threads))
            print(_line(rows[-1]), flush=True)
    print()
    print(f"{size['train']} training dialogues, "
          f"{size['steps']} steps of {size['grad_accum']} rows x {size['pack_length']} tokens, "
          f"{size['validation']} validation and {size['test']} test dialogues (last turn, "
          f"<= {size['max_new_tokens']} new tokens), {args.threads} thread(s)")
    print(_table(rows))


def _subset(split: str, n: int, tmp: Path) -> Path:
    out = tmp / f"{split}.jsonl"
    out.write_text("".join((DATA / f"{split}.jsonl").read_text().splitlines(True)[:n]))
    return out


def _settings() -> Any:
    from dialoop.config import load_settings

    return load_settings()


def _method_row(method: str, files: dict[str, Path], size: dict, threads: int) -> dict:
    from dialoop.train.sft import SFTConfig, train_sft

    settings = _settings()
    config = SFTConfig(
        name=f"bench-{method}", train_file=files["train"], validation_file=files["validation"],
        method=method, learning_rate=LR[method], max_steps=size["steps"],
        grad_accum=size["grad_accum"], pack_length=size["pack_length"],
        eval_every=max(1, size["steps"] // 2), save_every=size["steps"], threads=threads,
        promote=False,
    )
    report = train_sft(config, settings).report
    gguf = False
    if "adapter" in report:
        from dialoop.errors import NotFoundError
        from dialoop.store import open_database
        from dialoop.store.adapters import AdapterStore

        db = open_database(settings.resolved_database_url)
        try:
            gguf = AdapterStore(db, settings.home).locate(report["adapter"], "llamacpp").is_file()
        except NotFoundError:  # no GGUF form: what the column shows
            gguf = False
        finally:
            db.close()
    answers = _answer(method, Path(report["run_dir"]), files["test"], size, threads)
    return {"method": method, "trainable": report["trainable_parameters"],
            "train_seconds": report["train_seconds"], "val_loss": report["best_val_loss"],
            "kept_step": report["kept_step"], "llamacpp": gguf, **answers}


def _base_row(files: dict[str, Path], size: dict, threads: int) -> dict:
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import load_model
    from dialoop.eval.model import token_metrics
    from dialoop.train.data import load_dialogues

    settings = _settings()
    model, tokenizer = load_model(resolve_model("default", home=settings.home),
                                  settings.home / "cache" / "models")
    val = token_metrics(model, tokenizer, load_dialogues(files["validation"]),
                        max_length=size["pack_length"])
    del model
    answers = _answer("base", None, files["test"], size, threads)
    return {"method": "base (no training)", "trainable": 0, "train_seconds": 0.0,
            "val_loss": val["loss"], "kept_step": None, "llamacpp": True, **answers}


def _answer(method: str, run_dir: Path | None, test: Path, size: dict, threads: int) -> dict:
    """BLEU, ROUGE-L, key accuracy and answer tokens/s on the test dialogues."""
    from dialoop.eval.model import generation_metrics
    from dialoop.train.data import load_dialogues

    engine, adapter = _engine(method, run_dir, threads)
    dialogues = load_dialogues(test)
    start = time.perf_counter()
    metrics, samples = generation_metrics(engine, dialogues, adapter=adapter, turns="last",
                                          max_new_tokens=size["max_new_tokens"])
    seconds = time.perf_counter() - start
    tokens = sum(len(engine.tokenizer(s["answer"], add_special_tokens=False)["input_ids"])
                 for s in samples)
    return {"bleu": metrics["bleu"], "rouge_l": metrics["rouge_l"],
            "key_accuracy": metrics.get("key_accuracy"), "tokens_per_second": tokens / seconds}


def _engine(method: str, run_dir: Path | None, threads: int) -> tuple[Any, str | None]:
    """(a torch engine that answers with the method's result, the adapter to name)."""
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import TorchEngine

    settings = _settings()
    cache = settings.home / "cache" / "models"
    if method == "full":
        assert run_dir is not None
        return TorchEngine(resolve_model(str(run_dir / "model"), home=settings.home),
                           cache_dir=cache, threads=threads), None
    engine = TorchEngine(resolve_model("default", home=settings.home), cache_dir=cache,
                         threads=threads)
    if run_dir is None:
        return engine, None
    engine.load_adapter(method, run_dir / "adapter")  # adalora: its plain-LoRA form
    return engine, method


def _kept(row: dict) -> str:
    return "" if row["kept_step"] is None else f" ({row['kept_step']})"


def _line(row: dict) -> str:
    return (f"{row['method']:8s} {row['trainable']:>11,} params  {row['train_seconds']:6.1f} s  "
            f"val {row['val_loss']:.3f}{_kept(row)}  bleu {row['bleu']:5.2f}  "
            f"rouge-l {row['rouge_l']:.3f}  "
            f"{row['tokens_per_second']:5.1f} tok/s")


def _table(rows: list[dict]) -> str:
    lines = ["| method | trainable params | training s | val loss (kept step) | BLEU | ROUGE-L "
             "| key acc. | answer tok/s | also on llama.cpp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        keys = "–" if r["key_accuracy"] is None else f"{r['key_accuracy']:.2f}"
        speed = f"{r['tokens_per_second']:.1f}"
        lines.append(f"| {r['method']} | {r['trainable']:,} | {r['train_seconds']:.1f} | "
                     f"{r['val_loss']:.3f}{_kept(r)} | {r['bleu']:.2f} | {r['rouge_l']:.3f} | "
                     f"{keys} | "
                     f"{speed} | {'yes' if r['llamacpp'] else 'no'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
