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
- perplexity on a held-out text (the start of the prose corpus shipped in the package,
  the text ``dialoop models --bench`` gates on), from the mean negative log-likelihood of
  each token given the previous ones, and on the same text the share of positions whose
  most likely next token equals Q4_1's ("top1", llama.cpp's "Same top p").

The measuring code is :mod:`dialoop.engine.formats`, the one ``dialoop models --bench``
picks the served format with; this script prints more of it.

Every derived format starts from the Q4_1 weights, so none can be better than Q4_1 in
what it knows; F16 and Q8_0 hold Q4_1's weights (almost) exactly and are its quality
reference, Q4_0 loses a little more.

    python benchmarks/bench_formats.py [--runs 3] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import tempfile
import time
from pathlib import Path

from dialoop.engine.formats import (
    AGREEMENT_PROMPTS,
    CANDIDATES,
    Budget,
    agreement,
    cpu_info,
    measure,
    quantize,
)

FORMATS = ["Q4_1", *CANDIDATES]


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
    budget = Budget(runs=args.runs, decode_tokens=args.tokens, prefill_tokens=args.prefill,
                    ppl_tokens=args.ppl_tokens, prompts=args.prompts)

    import llama_cpp

    from dialoop.engine.models import bundled_gguf

    source = bundled_gguf()
    cpu, flags = cpu_info()
    began = time.perf_counter()
    results = {}
    quant_time: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dialoop-formats-") as tmp:
        for fmt in formats:
            if fmt == "Q4_1":
                path = source
            else:
                path = Path(tmp) / f"SmolLM2-135M-Instruct.{fmt}.gguf"
                quant_time[fmt] = quantize(source, path, fmt, args.threads)
            results[fmt] = measure(path, args.threads, budget)
            print(f"  measured {fmt} ({time.perf_counter() - began:.0f} s)", flush=True)

    ref = results["Q4_1"]
    print()
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; llama-cpp-python "
          f"{llama_cpp.__version__}; python {platform.python_version()}")
    print(f"cpu: {cpu}; {args.threads} threads; flags: {' '.join(flags) or 'none found'}")
    print(f"model: {source.name} and formats derived from it; greedy; median of {args.runs}; "
          f"decode {args.tokens} tokens, prefill {args.prefill} tokens, "
          f"agreement {len(ref.answers)} prompts x 32 tokens, "
          f"perplexity on {args.ppl_tokens} tokens of the held-out text\n")
    header = (f"{'format':<7}{'MB':>7}{'load s':>8}{'decode t/s':>12}{'x Q4_1':>8}"
              f"{'prefill t/s':>13}{'x Q4_1':>8}{'agree':>7}{'same':>6}{'top1':>6}"
              f"{'ppl':>8}{'x Q4_1':>8}")
    print(header)
    print("-" * len(header))
    for fmt, r in results.items():
        agree, same = agreement(r.answers, ref.answers)
        print(f"{fmt:<7}{r.size / 1e6:>7.1f}{r.load:>8.2f}"
              f"{r.decode:>12.1f}{r.decode / ref.decode:>8.2f}"
              f"{r.prefill:>13.1f}{r.prefill / ref.prefill:>8.2f}"
              f"{agree:>7.2f}{same:>6.1f}{float((r.top1 == ref.top1).mean()):>6.3f}"
              f"{r.ppl:>8.2f}{r.ppl / ref.ppl:>8.3f}")
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
