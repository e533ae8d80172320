"""Speed and quality of weight formats derived from the bundled GGUF (issue 20, part 1).

The bundled SmolLM2-135M-Instruct Q4_1 file is re-quantized with llama.cpp's own quantize
API (``llama_cpp.llama_model_quantize``, ``allow_requantize``) into Q4_0, Q8_0 and F16 in
a temporary directory. Each format is then measured with raw llama-cpp-python, greedy,
the same threads:

- decode tokens/s: tokens after the first ÷ time from the first token to the last,
  ~128 generated tokens, median of --runs;
- prefill tokens/s: one ~1,000-token prompt evaluated from scratch, median of --runs;
- file size and load time (``Llama(...)`` construction);
- greedy agreement with the original Q4_1 on a fixed set of prompts: the share of the
  first 32 generated tokens that are identical (position by position, up to the first
  divergence), and the share of prompts whose 32 tokens are all identical;
- perplexity on a held-out text (the start of this repository's README.md), from the
  mean negative log-likelihood of each token given the previous ones, and on the same
  text the share of positions whose most likely next token equals Q4_1's ("top1").

Every derived format starts from the Q4_1 weights, so none can be better than Q4_1 in
what it knows; F16 and Q8_0 hold Q4_1's weights (almost) exactly and are its quality
reference, Q4_0 loses a little more.

    python benchmarks/bench_formats.py [--runs 3] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import math
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

FORMATS = ["Q4_1", "Q4_0", "Q8_0", "F16"]

DECODE_PROMPT = [{"role": "user",
                  "content": "Write a long story about a dragon who learns to sing."}]

AGREEMENT_PROMPTS = [
    "What is the capital of France?",
    "Explain in two sentences why the sky is blue.",
    "Write a haiku about autumn leaves.",
    "How do I reverse a list in Python?",
    "Give me three tips for sleeping better.",
    "What is the difference between a virus and a bacterium?",
    "Summarize the plot of Romeo and Juliet.",
    "My order arrived damaged. What should I do?",
    "Translate 'good morning' into Spanish and German.",
    "What are the main causes of inflation?",
]

# Public-domain filler for the prefill prompt (opening of "A Tale of Two Cities", 1859).
PREFILL_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it "
    "was the season of Light, it was the season of Darkness, it was the spring of hope, it "
    "was the winter of despair, we had everything before us, we had nothing before us, we "
    "were all going direct to Heaven, we were all going direct the other way. "
)


def cpu_info() -> tuple[str, list[str]]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    wanted = [f for f in (flags.group(1).split() if flags else [])
              if f.startswith(("avx2", "avx512", "avx_vnni", "amx", "f16c", "fma"))]
    return (name.group(1) if name else platform.processor() or "?"), sorted(set(wanted))


def quantize(source: Path, target: Path, ftype: int, threads: int) -> float:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = threads
    start = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(),
                                        ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize -> {rc} for {target.name}")
    return time.perf_counter() - start


def chat_tokens(llm, messages: list[dict[str, str]]) -> list[int]:  # type: ignore[no-untyped-def]
    import llama_cpp

    template = llm.metadata["tokenizer.chat_template"]
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(template, eos_token="",
                                                                 bos_token="")
    prompt = formatter(messages=messages).prompt
    return llm.tokenize(prompt.encode(), add_bos=False, special=True)


def greedy(llm, tokens: list[int], n: int, stamps: list[float] | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    llm.reset()
    out: list[int] = []
    for token in llm.generate(tokens, temp=0.0, top_k=0, top_p=1.0, min_p=0.0,
                              repeat_penalty=1.0, reset=True):
        if token == llm.token_eos() or len(out) >= n:
            break
        out.append(token)
        if stamps is not None:
            stamps.append(time.perf_counter())
    return out


def measure(gguf: Path, args: argparse.Namespace, prefill_tokens: list[int] | None,
            ppl_text: str) -> dict:
    import llama_cpp

    result: dict = {"size": gguf.stat().st_size}
    start = time.perf_counter()
    llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)
    result["load"] = time.perf_counter() - start

    decode_prompt = chat_tokens(llm, DECODE_PROMPT)
    greedy(llm, decode_prompt, 16)  # warm-up
    rates, counts = [], []
    for _ in range(args.runs):
        stamps: list[float] = []
        greedy(llm, decode_prompt, args.tokens, stamps)
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        counts.append(len(stamps))
    result["decode"] = statistics.median(rates)
    result["decode_n"] = min(counts)

    if prefill_tokens is None:
        prefill_tokens = llm.tokenize(
            (PREFILL_TEXT * 20).encode(), add_bos=False)[: args.prefill]
    result["prefill_n"] = len(prefill_tokens)
    rates = []
    for _ in range(args.runs):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prefill_tokens)
        rates.append(len(prefill_tokens) / (time.perf_counter() - start))
    result["prefill"] = statistics.median(rates)

    prompts = AGREEMENT_PROMPTS[: args.prompts]
    result["answers"] = [greedy(llm, chat_tokens(llm, [{"role": "user", "content": p}]), 32)
                         for p in prompts]
    del llm

    # Perplexity: every position's logits, so a second context with logits_all.
    llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=True, verbose=False)
    tokens = llm.tokenize(ppl_text.encode(), add_bos=False)[: args.ppl_tokens]
    llm.reset()
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    logz = (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)))
    nll = logz - logits[np.arange(len(tokens) - 1), tokens[1:]]
    result["ppl"] = math.exp(float(nll.mean()))
    result["top1"] = logits.argmax(axis=1)
    result["ppl_n"] = len(tokens)
    del llm
    return result


def agreement(answers: list[list[int]], reference: list[list[int]],
              n: int = 32) -> tuple[float, float]:
    """(mean share of the first n tokens identical up to the first divergence,
    share of prompts whose first n tokens are all identical)."""
    shares, whole = [], 0
    for ours, ref in zip(answers, reference, strict=True):
        ours, ref = ours[:n], ref[:n]
        if ours == ref:
            shares.append(1.0)
            whole += 1
            continue
        same = 0
        for a, b in zip(ours, ref, strict=False):
            if a != b:
                break
            same += 1
        shares.append(same / max(len(ours), len(ref)))
    return statistics.mean(shares), whole / len(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128, help="decode tokens per run")
    parser.add_argument("--prefill", type=int, default=1000, help="prefill prompt tokens")
    parser.add_argument("--prompts", type=int, default=len(AGREEMENT_PROMPTS))
    parser.add_argument("--ppl-tokens", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated, from " + ", ".join(FORMATS))
    parser.add_argument("--quick", action="store_true",
                        help="1 run, 64 decode / 512 prefill tokens, 5 prompts, no F16")
    args = parser.parse_args()
    formats = [f.strip().upper() for f in args.formats.split(",") if f.strip()]
    if args.quick:
        args.runs, args.tokens, args.prefill, args.prompts, args.ppl_tokens = 1, 64, 512, 5, 512
        formats = [f for f in formats if f != "F16"]
    if "Q4_1" in formats:
        formats.remove("Q4_1")
    formats.insert(0, "Q4_1")  # the reference, always first

    import llama_cpp

    from dialoop.engine.models import bundled_gguf

    source = bundled_gguf()
    ppl_text = (REPO / "README.md").read_text()
    cpu, flags = cpu_info()
    began = time.perf_counter()
    results: dict[str, dict] = {}
    quant_time: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dialoop-formats-") as tmp:
        for fmt in formats:
            if fmt == "Q4_1":
                path = source
            else:
                path = Path(tmp) / f"SmolLM2-135M-Instruct.{fmt}.gguf"
                quant_time[fmt] = quantize(source, path,
                                           getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{fmt}"),
                                           args.threads)
            results[fmt] = measure(path, args, None, ppl_text)
            print(f"  measured {fmt} ({time.perf_counter() - began:.0f} s)", flush=True)

    ref = results["Q4_1"]
    print()
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; llama-cpp-python "
          f"{llama_cpp.__version__}; python {platform.python_version()}")
    print(f"cpu: {cpu}; {args.threads} threads; flags: {' '.join(flags) or 'none found'}")
    print(f"model: {source.name} and formats derived from it; greedy; median of {args.runs}; "
          f"decode {ref['decode_n']} tokens, prefill {ref['prefill_n']} tokens, "
          f"agreement {len(ref['answers'])} prompts x 32 tokens, "
          f"perplexity on {ref['ppl_n']} tokens of README.md\n")
    header = (f"{'format':<7}{'MB':>7}{'load s':>8}{'decode t/s':>12}{'x Q4_1':>8}"
              f"{'prefill t/s':>13}{'x Q4_1':>8}{'agree':>7}{'same':>6}{'top1':>6}"
              f"{'ppl':>8}{'x Q4_1':>8}")
    print(header)
    print("-" * len(header))
    for fmt, r in results.items():
        agree, same = agreement(r["answers"], ref["answers"])
        print(f"{fmt:<7}{r['size'] / 1e6:>7.1f}{r['load']:>8.2f}"
              f"{r['decode']:>12.1f}{r['decode'] / ref['decode']:>8.2f}"
              f"{r['prefill']:>13.1f}{r['prefill'] / ref['prefill']:>8.2f}"
              f"{agree:>7.2f}{same:>6.1f}{float((r['top1'] == ref['top1']).mean()):>6.3f}"
              f"{r['ppl']:>8.2f}{r['ppl'] / ref['ppl']:>8.3f}")
    print()
    print("agree = mean share of the first 32 greedy tokens identical to Q4_1's (up to the "
          "first divergence); same = share of prompts with all 32 identical;\n"
          "top1 = share of the held-out text's positions where the most likely next token "
          "equals Q4_1's (teacher-forced, so one early difference does not end the match).")
    if quant_time:
        print("quantize time: " + ", ".join(f"{f} {s:.1f} s" for f, s in quant_time.items()))
    print(f"total: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
