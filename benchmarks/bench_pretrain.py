"""Pre-training speed of dialoop's decoder against transformers' Llama of the same shape,
and the validation perplexity that a fixed time budget buys.

    flock /tmp/dialoop-bench.lock python benchmarks/bench_pretrain.py [--minutes 10]

1. Throughput. Three contenders train on the same packed rows of the bundled corpus (or
   --data), the same batches, from the same initial weights, with the same AdamW,
   clipping and loss (cross-entropy on all positions, computed the same way):
   - dialoop's Decoder with torch's fused attention (``fast_attention=True``, what
     ``dialoop train pretrain`` uses),
   - dialoop's Decoder with the written-out attention (the reference the tests check),
   - ``LlamaForCausalLM`` (sdpa attention) built from the same config and weights
     (the decoder exports to it one to one: dialoop/transformer/export.py).
   They alternate, ``--trials`` times ``--steps`` steps each after a warm-up; the figures
   are medians of tokens/s, and the ratio is dialoop ÷ transformers (target ≥ 0.9).
2. Budget. ``dialoop train pretrain`` (the library call, default model) trains each
   architecture (``--arch``, default all three) for ``--minutes`` of wall-clock time on
   the same corpus, one after the other, and a table gives each one's steps, tokens/s
   and validation perplexity: of the next token (decoder), of the masked tokens
   (encoder, MLM) and of the restored row (encoder-decoder, denoising). The three
   perplexities measure different tasks: compare each with itself across budgets.

    python benchmarks/bench_pretrain.py --minutes 0.5 --trials 0   # budgets only, quick
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dialoop.transformer import Decoder, TransformerConfig
from dialoop.transformer.data import bundled_corpus, pack, read_corpus
from dialoop.transformer.export import llama_state_dict
from dialoop.transformer.pretrain import PretrainConfig, pretrain
from dialoop.transformer.tokenizer import Specials, train_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training time for the perplexity figure (0: skip it)")
    parser.add_argument("--arch", choices=["decoder", "encoder", "encdec"], action="append",
                        help="architecture(s) to train for the budget (default: all three)")
    parser.add_argument("--trials", type=int, default=5, help="throughput trials (0: skip)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per trial")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--data", type=Path, action="append",
                        help="corpus files (default: the bundled corpus)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    defaults = PretrainConfig(arch="decoder", out=Path("."))
    documents = read_corpus(args.data or [bundled_corpus()])
    tokenizer = train_tokenizer(documents, defaults.vocab_size)
    rows = pack([tokenizer.encode(d).ids for d in documents], args.block_size + 1, Specials.eos)
    config = TransformerConfig(
        vocab_size=tokenizer.get_vocab_size(), block_size=args.block_size,
        n_layer=defaults.n_layer, n_head=defaults.n_head, d_model=defaults.d_model,
        d_ff=defaults.d_ff)
    print(f"model: {config.n_layer} layers, width {config.d_model}, {config.n_head} heads, "
          f"feed-forward {config.d_ff}, vocabulary {config.vocab_size}; batch "
          f"{args.batch_size} x {args.block_size} tokens; {args.threads} thread(s); "
          f"{len(rows)} rows of data", flush=True)
    if args.trials > 0:
        _throughput(config, rows, args)
    if args.minutes > 0:
        _budget(args)


def _contenders(config: TransformerConfig) -> dict[str, torch.nn.Module]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    fast = Decoder(_with(config, fast_attention=True))
    reference = Decoder(config)
    reference.load_state_dict(fast.state_dict())
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model,
        intermediate_size=config.d_ff, num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head, num_key_value_heads=config.n_head,
        max_position_embeddings=config.block_size, rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=True, attn_implementation="sdpa", use_cache=False))
    hf.load_state_dict(llama_state_dict(fast))
    return {"dialoop (fused attention)": fast, "dialoop (written-out attention)": reference,
            "transformers LlamaForCausalLM": hf}


def _with(config: TransformerConfig, **changes: object) -> TransformerConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
          y: torch.Tensor) -> float:
    if isinstance(model, Decoder):
        logits, _ = model(x)
    else:
        logits = model(input_ids=x).logits
    B, T, V = logits.size()
    loss = F.cross_entropy(logits.view(B * T, V), y.reshape(B * T))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def _throughput(config: TransformerConfig, rows: torch.Tensor, args: argparse.Namespace) -> None:
    models = _contenders(config)
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1,
                                          betas=(0.9, 0.95)) for name, m in models.items()}
    generator = torch.Generator().manual_seed(0)
    batches = [rows[torch.randint(len(rows), (args.batch_size,), generator=generator)]
               for _ in range(args.steps)]
    tokens = args.steps * args.batch_size * args.block_size
    speeds: dict[str, list[float]] = {name: [] for name in models}
    losses: dict[str, float] = {}
    for name in models:  # warm-up: first calls allocate and pick kernels
        for r in batches[:3]:
            _step(models[name], optimizers[name], r[:, :-1], r[:, 1:])
    for trial in range(args.trials):
        for name, model in models.items():
            start = time.perf_counter()
            for r in batches:
                losses[name] = _step(model, optimizers[name], r[:, :-1], r[:, 1:])
            speeds[name].append(tokens / (time.perf_counter() - start))
        print(f"trial {trial + 1}: " + "  ".join(f"{s[-1]:7.0f}" for s in speeds.values())
              + "  tokens/s (fused, written-out, transformers)", flush=True)
    hf = statistics.median(speeds["transformers LlamaForCausalLM"])
    print(f"\n{'contender':34s} {'tokens/s (median)':>18s} {'÷ transformers':>15s} "
          f"{'last loss':>10s}")
    for name, values in speeds.items():
        median = statistics.median(values)
        print(f"{name:34s} {median:18.0f} {median / hf:15.2f} {losses[name]:10.4f}")


def _budget(args: argparse.Namespace) -> None:
    archs = args.arch or ["decoder", "encoder", "encdec"]
    print(f"\nbudget: {args.minutes:g} min of training per architecture, "
          f"batch {args.batch_size} x {args.block_size} tokens", flush=True)
    rows = []
    for arch in archs:
        with tempfile.TemporaryDirectory() as tmp:
            config = PretrainConfig(arch=arch, out=Path(tmp) / "run", minutes=args.minutes,
                                    data=tuple(args.data or ()), block_size=args.block_size,
                                    batch_size=args.batch_size, threads=args.threads,
                                    eval_every=100, save_every=10**9)
            report = pretrain(config)
        best = min(report["evals"], key=lambda e: e["validation_loss"])
        rows.append((arch, report, best))
        print(f"  {arch}: done, {report['steps']} steps", flush=True)
    print(f"\n{'arch':8s} {'params':>8s} {'steps':>6s} {'tokens/s':>9s} {'train loss':>11s} "
          f"{'val loss':>9s} {'val ppl':>8s} {'best ppl (step)':>16s}  perplexity of")
    what = {"decoder": "the next token", "encoder": "masked tokens (MLM)",
            "encdec": "the restored row (denoising)"}
    for arch, report, best in rows:
        train_loss = report["train_loss"]
        print(f"{arch:8s} {report['parameters'] / 1e6:7.2f}M {report['steps']:6d} "
              f"{report['tokens_per_second']:9.0f} "
              f"{'-' if train_loss is None else f'{train_loss:.3f}':>11s} "
              f"{report['validation_loss']:9.3f} {report['validation_perplexity']:8.1f} "
              f"{best['validation_perplexity']:9.1f}"
              f" ({best['step']:4d})  {what[arch]}")


if __name__ == "__main__":
    main()
