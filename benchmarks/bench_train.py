"""Training speed of `dialoop train sft` against a plain transformers Trainer.

    flock /tmp/dialoop-bench.lock python benchmarks/bench_train.py [--dialogues 48] [--repeats 3]

Both train the bundled model (SmolLM2-135M, dequantized) for one epoch on the same
store_support dialogues with the same LoRA (r=16, alpha=32, dropout 0.05, all seven
projections), the same loss mask (assistant tokens only, from ``encode_chat``),
optimizer (AdamW, lr 1e-3, 5% warmup then cosine), clipping, seed, precision (bf16
autocast where the CPU has it) and thread count. They differ in how batches are made
and where the loss is computed: dialoop packs dialogues into rows of 512 tokens and
takes logits only at assistant positions; the Trainer pads each batch of 4 to its
longest dialogue (``DataCollatorForSeq2Seq``) and computes logits everywhere.

Each contender runs in its own process (so peak memory is its own), alternating,
``--repeats`` times; the figures are medians. Training tokens/s counts real
(non-padding) tokens over the training loop's own time (no model loading).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "store_support" / "sft" / "train.jsonl"
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                            "down_proj"])
LR, WARMUP, SEED, CLIP = 1e-3, 0.05, 0, 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dialogues", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both (1: steadier on a shared machine)")
    parser.add_argument("--contender", choices=["dialoop", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        result = _dialoop(args) if args.contender == "dialoop" else _trainer(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.jsonl"
        lines = DATA.read_text().splitlines()[: args.dialogues]
        data.write_text("\n".join(lines) + "\n")
        runs: dict[str, list[dict]] = {"dialoop": [], "trainer": []}
        for i in range(args.repeats):
            for name in ("dialoop", "trainer"):
                out = subprocess.run(
                    [sys.executable, __file__, "--contender", name, "--data", str(data),
                     "--threads", str(args.threads)],
                    capture_output=True, text=True, check=False,
                    env={**os.environ, "DIALOOP_HOME": str(Path(tmp) / f"home-{name}-{i}"),
                         "HF_HUB_OFFLINE": "1"},
                )
                if out.returncode != 0:
                    sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                runs[name].append(result)
                print(f"run {i + 1} {name:8s} {result['tokens_per_second']:7.1f} tokens/s  "
                      f"{result['seconds']:6.1f} s  peak {result['peak_rss_mb']:6.0f} MB  "
                      f"loss {result['final_loss']:.3f}", flush=True)
    _summary(runs, args)


def _summary(runs: dict[str, list[dict]], args: argparse.Namespace) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def spread(name: str) -> str:
        values = [r["tokens_per_second"] for r in runs[name]]
        return f"{min(values):.1f}–{max(values):.1f}"

    d, t = med("dialoop", "tokens_per_second"), med("trainer", "tokens_per_second")
    print()
    print(f"{args.dialogues} dialogues, 1 epoch, {args.threads} thread(s), "
          f"medians of {args.repeats} runs")
    print("| | dialoop train sft | transformers Trainer |")
    print("|---|---|---|")
    print(f"| training tokens/s | {d:.1f} ({spread('dialoop')}) | {t:.1f} ({spread('trainer')}) |")
    print(f"| tokens computed (incl. padding) | {med('dialoop', 'computed_tokens'):.0f} | "
          f"{med('trainer', 'computed_tokens'):.0f} |")
    print(f"| optimizer steps | {med('dialoop', 'steps'):.0f} | {med('trainer', 'steps'):.0f} |")
    print(f"| final training loss | {med('dialoop', 'final_loss'):.3f} | "
          f"{med('trainer', 'final_loss'):.3f} |")
    print(f"| peak memory (RSS) | {med('dialoop', 'peak_rss_mb'):.0f} MB | "
          f"{med('trainer', 'peak_rss_mb'):.0f} MB |")
    pairs = [a["tokens_per_second"] / b["tokens_per_second"]
             for a, b in zip(runs["dialoop"], runs["trainer"], strict=True)]
    print(f"\nratio dialoop / Trainer: {d / t:.2f} (target >= 1.0); run by run: "
          + ", ".join(f"{r:.2f}" for r in pairs))


# -- the contenders, each in its own process --------------------------------------------


def _dialoop(args: argparse.Namespace) -> dict:
    from dialoop.config import load_settings
    from dialoop.train.sft import SFTConfig, train_sft

    config = SFTConfig(
        name="bench", train_file=args.data, validation_fraction=0.0, epochs=1,
        lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"],
        target_modules=tuple(LORA["target_modules"]), learning_rate=LR, warmup_ratio=WARMUP,
        grad_accum=2, pack_length=512, max_grad_norm=CLIP, seed=SEED, save_every=10_000,
        threads=args.threads, promote=False,
    )
    report = train_sft(config, load_settings()).report
    return {
        "tokens_per_second": report["train_tokens_per_second"],
        "seconds": report["train_seconds"],
        "tokens": report["train_tokens_seen"],
        "computed_tokens": report["train_tokens_seen"],  # packed: nothing is padding
        "steps": report["steps"],
        "final_loss": report["history"][-1]["loss"],
    }


def _trainer(args: argparse.Namespace) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from dialoop.config import load_settings
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import load_model
    from dialoop.train.chat_data import encode_chat
    from dialoop.train.data import load_dialogues
    from dialoop.train.sft import _use_bf16

    torch.set_num_threads(args.threads)
    settings = load_settings()
    model, tokenizer = load_model(resolve_model("default", home=settings.home),
                                  settings.home / "cache" / "models")
    torch.manual_seed(SEED)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    encoded = [encode_chat(tokenizer, d.messages) for d in load_dialogues(args.data)]
    dataset = [{"input_ids": e.input_ids, "labels": e.labels,
                "attention_mask": [1] * len(e.input_ids)} for e in encoded]

    class Clock(TrainerCallback):  # the training loop's own time, as dialoop reports it
        computed = 0
        start = end = 0.0

        def on_train_begin(self, *a: object, **k: object) -> None:
            self.start = time.perf_counter()

        def on_train_end(self, *a: object, **k: object) -> None:
            self.end = time.perf_counter()

    clock = Clock()
    out_dir = Path(settings.home) / "trainer"
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(out_dir), per_device_train_batch_size=4,
            gradient_accumulation_steps=2, num_train_epochs=1, learning_rate=LR,
            warmup_steps=WARMUP, lr_scheduler_type="cosine", max_grad_norm=CLIP, seed=SEED,
            bf16=_use_bf16("auto"), use_cpu=True, save_strategy="no", report_to=[],
            logging_steps=1, dataloader_num_workers=0, disable_tqdm=True,
        ),
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[clock],
    )
    # Count what the model computes: every batch as padded by the collator.
    collate = trainer.data_collator
    computed = [0]

    def counting(features: list[dict]) -> dict:
        batch = collate(features)
        computed[0] += int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = sum(len(e.input_ids) for e in encoded)
    seconds = clock.end - clock.start
    return {"tokens_per_second": tokens / seconds, "seconds": seconds, "tokens": tokens,
            "computed_tokens": computed[0], "steps": trainer.state.global_step,
            "final_loss": losses[-1] if losses else float("nan")}


if __name__ == "__main__":
    main()
