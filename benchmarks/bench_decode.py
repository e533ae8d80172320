"""Decode speed of dialoop's default engine beside raw llama-cpp-python and transformers.

Same GGUF, same prompt, greedy, the same threads; decode rate = tokens after the
first ÷ time from the first token to the last (prompt evaluation is excluded, so
prefix reuse gives dialoop no advantage here). Runs are interleaved and each
figure is the median of --runs.

    python benchmarks/bench_decode.py [--runs 5] [--tokens 128] [--threads 2]

Targets: dialoop ≥ 0.95 × raw llama-cpp-python; dialoop ≥ 4 × transformers generate().

Then the roofline (issue 20): this host's memory bandwidth (--threads threads each copying
a share of a 512 MiB numpy array, best of 5; GB/s counts the bytes read and written) and
the decode bound it sets: every weight is read once per generated token, so bytes per
token ≈ the GGUF file's size (the tied embedding matrix is the output layer too, read
whole) plus the KV cache read at the mean position of the decode (f16 K and V of every
layer). Decode (128 tokens) and prefill (512 and 1,600 tokens, from scratch) side by side
for dialoop as it serves (the weight format, threads and n_ubatch of the host's cached
pick, ``dialoop models --bench``; picked here if none is cached), raw llama-cpp-python on
the original Q4_1, and raw on the chosen format; each decode as a share of its bound;
then greedy agreement, top-1 agreement and perplexity of the chosen format vs the original.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to sing."}]


def decode_rate(stamps: list[float]) -> float:
    """Tokens per second between the first and the last token."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def dialoop_runner(gguf: Path, threads: int, n: int) -> Callable[[], list[float]]:
    from dialoop.engine import GenerationParams
    from dialoop.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(gguf, context_window=4096, threads=threads)
    params = GenerationParams(max_tokens=n)

    def run() -> list[float]:
        stamps = []
        for chunk in engine.stream(PROMPT, params):
            if chunk.text:
                stamps.append(time.perf_counter())
        return stamps

    return run


def llama_cpp_runner(gguf: Path, threads: int, n: int) -> Callable[[], list[float]]:
    import llama_cpp

    llm = llama_cpp.Llama(str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    prompt = llm.metadata["tokenizer.chat_template"]  # render exactly as dialoop does
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(prompt, eos_token="", bos_token="")
    tokens = llm.tokenize(formatter(messages=PROMPT).prompt.encode(), add_bos=False, special=True)

    def run() -> list[float]:
        llm.reset()
        stamps = []
        for token in llm.generate(tokens, temp=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                  repeat_penalty=1.0):
            if token == llm.token_eos() or len(stamps) >= n:
                break
            stamps.append(time.perf_counter())
        return stamps

    return run


def transformers_runner(gguf: Path, threads: int, n: int) -> Callable[[], list[float]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

    from dialoop.engine.torch import dequantized_folder

    torch.set_num_threads(threads)
    folder = dequantized_folder(gguf, Path(tempfile.gettempdir()) / "dialoop-bench-models")
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)

    class Stamp(StoppingCriteria):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):  # type: ignore[no-untyped-def]
            self.stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def run() -> list[float]:
        stamp = Stamp()
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=n, do_sample=False, stopping_criteria=[stamp])
        return stamp.stamps

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-transformers", action="store_true",
                        help="skip the transformers row (the slowest part of the run)")
    args = parser.parse_args()

    from dialoop.engine.models import bundled_gguf

    gguf = bundled_gguf()
    runners = {
        "dialoop (llama.cpp)": dialoop_runner(gguf, args.threads, args.tokens),
        "raw llama_cpp.Llama": llama_cpp_runner(gguf, args.threads, args.tokens),
    }
    if not args.no_transformers:
        runners["transformers generate()"] = transformers_runner(gguf, args.threads, args.tokens)
    for run in runners.values():  # warm-up
        run()
    rates: dict[str, list[float]] = {name: [] for name in runners}
    counts: dict[str, int] = {}
    for _ in range(args.runs):
        for name, run in runners.items():
            stamps = run()
            rates[name].append(decode_rate(stamps))
            counts[name] = len(stamps)
    median = {name: statistics.median(r) for name, r in rates.items()}

    print(f"machine: {platform.machine()}, {args.threads} threads, {platform.python_version()}")
    print(f"model: {gguf.name}; greedy; {args.tokens} tokens; median of {args.runs} runs\n")
    print(f"{'engine':<26}{'tokens':>8}{'tok/s':>10}{'min':>9}{'max':>9}")
    for name in runners:
        print(f"{name:<26}{counts[name]:>8}{median[name]:>10.1f}"
              f"{min(rates[name]):>9.1f}{max(rates[name]):>9.1f}")
    ours = median["dialoop (llama.cpp)"]
    print()
    print(f"dialoop / raw llama-cpp-python: {ours / median['raw llama_cpp.Llama']:.3f}"
          "   (target >= 0.95)")
    if "transformers generate()" in median:
        print(f"dialoop / transformers:         {ours / median['transformers generate()']:.2f}"
              "    (target >= 4)")
    print()
    roofline(gguf, args)


def memory_bandwidth(threads: int, mib: int = 512, runs: int = 5) -> float:
    """GB/s of ``threads`` threads copying a ``mib`` MiB array (read + write), best of runs."""
    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(len(src)), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def copy(lo: int, hi: int) -> None:
        np.copyto(dst[lo:hi], src[lo:hi])  # numpy releases the GIL while copying

    best = 0.0
    for _ in range(runs):
        workers = [threading.Thread(target=copy, args=b) for b in bounds]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, 2 * src.nbytes / (time.perf_counter() - start) / 1e9)
    return best


def kv_bytes_per_position(gguf: Path) -> int:
    """Bytes of f16 K and V that one position adds to the cache (all layers)."""
    import gguf as gguf_lib

    reader = gguf_lib.GGUFReader(str(gguf))

    def field(key: str) -> int:
        return int(reader.fields[f"llama.{key}"].contents())

    head_dim = field("embedding_length") // field("attention.head_count")
    return field("block_count") * 2 * field("attention.head_count_kv") * head_dim * 2


def heldout_messages(llm, n: int) -> tuple[list[dict[str, str]], list[int]]:  # type: ignore[no-untyped-def]
    """A user message of about ``n`` tokens from the held-out text, and ``n`` raw tokens."""
    from dialoop.engine.formats import prefill_tokens

    tokens = prefill_tokens(llm, n)
    text = llm.detokenize(tokens[: n - 12]).decode("utf-8", errors="ignore")
    return [{"role": "user", "content": text}], tokens


def raw_rates(path: Path, threads: int, n: int, runs: int, prefills: tuple[int, ...],
              n_ubatch: int | None = None) -> dict[str, float]:
    """Raw llama-cpp-python: decode tok/s (n tokens) and prefill tok/s for each length."""
    import llama_cpp

    from dialoop.engine import formats

    extra = {"n_batch": 512, "n_ubatch": n_ubatch} if n_ubatch else {}
    llm = llama_cpp.Llama(str(path), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                          verbose=False, **extra)
    out = {"decode": formats.decode_rate(llm, formats.chat_tokens(llm, PROMPT), n, runs)}
    for p in prefills:
        out[f"prefill {p}"] = formats.prefill_rate(llm, formats.prefill_tokens(llm, p), runs)
    llm.close()
    return out


def dialoop_rates(served, threads: int, n: int, runs: int,  # type: ignore[no-untyped-def]
                  prefills: tuple[int, ...]) -> dict[str, float]:
    """dialoop's engine as it serves: decode tok/s and prefill tok/s (no prefix reuse)."""
    from dialoop.engine import GenerationParams
    from dialoop.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(served.path, context_window=4096, threads=threads,
                            n_batch=served.n_batch, n_ubatch=served.n_ubatch,
                            reuse_prefix=False)
    params = GenerationParams(max_tokens=n)

    def decode() -> float:
        stamps = [time.perf_counter() for c in engine.stream(PROMPT, params) if c.text]
        return decode_rate(stamps)

    decode()  # warm-up
    out = {"decode": statistics.median(decode() for _ in range(runs))}
    for p in prefills:
        messages, _ = heldout_messages(engine._llm, p)
        rates = []
        for _ in range(runs):
            chunks = list(engine.stream(messages, GenerationParams(max_tokens=1)))
            usage = chunks[-1].usage
            assert usage is not None and usage.first_token_seconds is not None
            rates.append(usage.prompt_tokens / usage.first_token_seconds)
        out[f"prefill {p}"] = statistics.median(rates)
    engine.close()
    return out


def roofline(gguf: Path, args: argparse.Namespace) -> None:
    from dialoop.config import load_settings
    from dialoop.engine import formats

    settings = load_settings()
    served = formats.served_file(gguf, settings.home, settings.weight_format)
    if served.record is None:
        print("no weight-format pick cached for this host: picking (about a minute)...",
              flush=True)
        formats.pick(gguf, settings.home, threads=args.threads)
        served = formats.served_file(gguf, settings.home, settings.weight_format)
    prefills = (512, 1600)
    rows = {
        f"dialoop ({served.format})": (served.path, dialoop_rates(
            served, args.threads, args.tokens, args.runs, prefills)),
        "raw Q4_1 (original)": (gguf, raw_rates(gguf, args.threads, args.tokens, args.runs,
                                                 prefills)),
        f"raw {served.format}": (served.path, raw_rates(
            served.path, args.threads, args.tokens, args.runs, prefills, served.n_ubatch)),
    }
    bandwidth = memory_bandwidth(args.threads)
    kv = kv_bytes_per_position(gguf) * (20 + args.tokens / 2)  # mean position of the decode
    print(f"memory bandwidth: {bandwidth:.1f} GB/s ({args.threads} threads copying 512 MiB, "
          f"best of 5); KV read per token at the mean decode position: {kv / 1e6:.1f} MB")
    print(f"served: {served.format} ({served.reason}); threads {args.threads}, n_batch "
          f"{served.n_batch or 512}, n_ubatch {served.n_ubatch or 512}\n")
    header = (f"{'engine':<24}{'MB/token':>9}{'bound t/s':>10}{'decode t/s':>11}"
              f"{'of bound':>9}{'prefill 512':>12}{'prefill 1600':>13}")
    print(header)
    print("-" * len(header))
    for name, (path, rates) in rows.items():
        per_token = path.stat().st_size + kv
        bound = bandwidth * 1e9 / per_token
        print(f"{name:<24}{per_token / 1e6:>9.1f}{bound:>10.0f}{rates['decode']:>11.1f}"
              f"{rates['decode'] / bound:>9.0%}{rates['prefill 512']:>12.1f}"
              f"{rates['prefill 1600']:>13.1f}")
    quality(gguf, served.path, served.format, args.threads)


def quality(original: Path, chosen: Path, name: str, threads: int) -> None:
    from dialoop.engine import formats

    if chosen == original:
        print(f"\nquality: the served file is the original ({name}): identical answers")
        return
    budget = formats.Budget(runs=1, decode_tokens=8, prefill_tokens=64,
                            prompts=len(formats.AGREEMENT_PROMPTS), ppl_tokens=1024)
    ref = formats.measure(original, threads, budget)
    measured = formats.measure(chosen, threads, budget)
    figures = formats.compare(name, measured, ref)
    whole = formats.agreement(measured.answers, ref.answers)[1]
    print(f"\nquality of {name} vs the original, {budget.prompts} prompts x 32 greedy tokens "
          f"and {budget.ppl_tokens} tokens of held-out text: greedy agreement "
          f"{figures.greedy:.2f} (all 32 identical: {whole:.1f} of prompts), top-1 agreement "
          f"{figures.top1:.3f}, perplexity {figures.ppl:.2f} vs {ref.ppl:.2f} "
          f"(x{figures.ppl_ratio:.3f})")


if __name__ == "__main__":
    main()
