"""Decode speed of dialoop's default engine beside raw llama-cpp-python and transformers.

Same GGUF, same prompt, greedy, the same threads; decode rate = tokens after the
first ÷ time from the first token to the last (prompt evaluation is excluded, so
prefix reuse gives dialoop no advantage here). Runs are interleaved and each
figure is the median of --runs.

    python benchmarks/bench_decode.py [--runs 5] [--tokens 128] [--threads 2]

Targets: dialoop ≥ 0.95 × raw llama-cpp-python; dialoop ≥ 4 × transformers generate().
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    args = parser.parse_args()

    from dialoop.engine.models import bundled_gguf

    gguf = bundled_gguf()
    runners = {
        "dialoop (llama.cpp)": dialoop_runner(gguf, args.threads, args.tokens),
        "raw llama_cpp.Llama": llama_cpp_runner(gguf, args.threads, args.tokens),
        "transformers generate()": transformers_runner(gguf, args.threads, args.tokens),
    }
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
    print(f"dialoop / transformers:         {ours / median['transformers generate()']:.2f}"
          "    (target >= 4)")


if __name__ == "__main__":
    main()
