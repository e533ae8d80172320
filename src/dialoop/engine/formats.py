"""Which weight format of a GGUF model to serve on this host, picked by measurement.

llama.cpp runs some weight formats on faster CPU paths than others: the bundled Q4_1 is
not repacked into its fastest kernels, Q4_0 and Q8_0 are (issue 20). :func:`pick` derives
candidate formats from a GGUF with llama.cpp's own quantize API (``allow_requantize``),
measures each on this host, gates them on quality against the original, keeps the
fastest that passes (the original when none does) and tunes the prefill micro-batch
(``n_ubatch``) for it. The derived files and a JSON record of every figure, the choice
and the reason live in ``$DIALOOP_HOME/cache/formats/<model>/``. :func:`served_file`
is what :func:`~dialoop.engine.open_engine` asks; it never measures (tests and first
starts would each pay a minute): ``weight_format = "auto"`` serves the cached pick when
it was made on this CPU, with this llama-cpp-python, for this very source file.

The quality gate compares with the original on a fixed held-out text (the start of the
prose corpus shipped in the package, ``dialoop/transformer/corpus.txt``: written for
dialoop, so in no model's training data), teacher-forced:

- **top-1 agreement ≥ 0.95**: the share of positions whose most likely next token is the
  original's, llama.cpp's ``perplexity --kl-divergence`` "Same top p", the field's
  standard check of a quantization. F16, which holds the Q4_1 weights *exactly*, scores
  ~0.95-0.96 on the bundled model (Q4_1's kernels round activations to 8 bits, and near
  ties flip), so 0.95 means "answers as the original, up to kernel rounding"; Q4_0
  re-quantized from Q4_1 (a second 4-bit rounding) scores ~0.66.
- **perplexity ratio ≤ 1.02**: llama.cpp's tables put Q8_0 within ~0.1 % of F16 and the
  4-bit formats 2-10 % above it; 2 % admits re-rounding noise (Q8_0 here: +0.5 %) and
  rejects a format that visibly knows less (Q4_0 here: +17 %).

Greedy agreement of free-running answers is measured and reported, not gated: one near
tie early in an answer changes the rest of it, so even F16 agrees on about half of 32
tokens. "Fastest" is the shortest time for a typical turn (a 512-token prompt and a
128-token answer) from the measured prefill and decode rates. A server that batches
(``batch_slots``) has its own pick: the passing format that decodes the most tokens/s for
``BATCH_ANSWERS`` answers at once in the batched engine. Batched decoding is closer to
compute-bound than one answer, so the two picks can differ (on an AVX-512 EPYC: Q8_0 for
one answer, F16 for sixteen).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.engine.llamacpp import default_threads
from dialoop.errors import ConfigError, ModelLoadError

__all__ = [
    "BATCH_ANSWERS",
    "CANDIDATES",
    "MIN_TOP1",
    "MAX_PPL_RATIO",
    "Budget",
    "Figures",
    "Measurement",
    "Record",
    "Served",
    "agreement",
    "choose",
    "choose_batched",
    "batch_decode_rate",
    "cpu_info",
    "decode_rate",
    "derive",
    "heldout_text",
    "load_record",
    "measure",
    "pick",
    "quantize",
    "served_file",
    "ubatch_prefill",
]

log = logging.getLogger(__name__)

CANDIDATES = ("Q4_0", "Q8_0", "F16")
MIN_TOP1 = 0.95
MAX_PPL_RATIO = 1.02
UBATCHES = (128, 256, 512)
N_BATCH = 512
TURN_PROMPT, TURN_ANSWER = 512, 128  # the typical turn "fastest" is timed on
BATCH_ANSWERS = 16  # answers decoded at once for the batched pick (the server's default)
_RECORD = "pick.json"
_SOURCE = "source.json"

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


@dataclass(frozen=True)
class Budget:
    """How much to measure: more is steadier, less is quicker."""

    runs: int = 3  # speed figures are the median of this many
    decode_tokens: int = 64
    prefill_tokens: int = 512
    ppl_tokens: int = 1024
    prompts: int = 3  # free-running greedy agreement, 32 tokens each


@dataclass(frozen=True)
class Figures:
    """One format on this host, against the original."""

    format: str  # "original" or a quantize type such as "Q8_0"
    size: int  # bytes
    decode: float  # tokens/s
    prefill: float  # tokens/s
    top1: float  # teacher-forced top-1 agreement with the original
    ppl: float
    ppl_ratio: float  # perplexity ÷ the original's
    greedy: float  # free-running greedy agreement (reported, not gated)
    batch_decode: float = 0.0  # tokens/s of BATCH_ANSWERS answers at once (0: not measured)

    @property
    def turn_seconds(self) -> float:
        return TURN_PROMPT / self.prefill + TURN_ANSWER / self.decode

    def verdict(self) -> str | None:
        """Why the quality gate rejects this format, or None if it passes."""
        if self.format == "original":
            return None
        if self.top1 < MIN_TOP1:
            return f"top-1 agreement {self.top1:.3f} < {MIN_TOP1}"
        if self.ppl_ratio > MAX_PPL_RATIO:
            return f"perplexity x{self.ppl_ratio:.3f} > {MAX_PPL_RATIO}"
        return None


@dataclass
class Record:
    """A pick as cached in ``pick.json``."""

    host: dict[str, Any]
    source: dict[str, Any]
    threads: int
    formats: list[Figures]
    choice: str
    reason: str
    n_batch: int
    n_ubatch: int
    ubatch_prefill: dict[str, float] = field(default_factory=dict)  # n_ubatch -> tokens/s
    measured: str = ""
    batch_choice: str = ""  # the pick for a batching server ("": not measured)
    batch_reason: str = ""

    def figures(self, fmt: str) -> Figures:
        return next(f for f in self.formats if f.format == fmt)


@dataclass(frozen=True)
class Served:
    """The file to serve and how, with the reason in words."""

    path: Path
    format: str
    reason: str
    threads: int
    n_batch: int | None = None
    n_ubatch: int | None = None
    record: Record | None = None


# -- the host ---------------------------------------------------------------------


def cpu_info() -> tuple[str, list[str]]:
    """(model name, the SIMD flags llama.cpp's kernels choose by)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    wanted = [f for f in (flags.group(1).split() if flags else [])
              if f.startswith(("avx2", "avx512", "avx_vnni", "amx", "f16c", "fma"))]
    return (name.group(1).strip() if name else platform.processor() or "?"), sorted(set(wanted))


def _host() -> dict[str, Any]:
    import llama_cpp

    name, flags = cpu_info()
    return {"cpu": name, "flags": flags, "llama_cpp": llama_cpp.__version__,
            "machine": platform.machine()}


def _source_key(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _format_dir(source: Path, home: Path) -> Path:
    """This source's cache folder, emptied if the source file changed since it was filled."""
    key = _source_key(source)
    tag = hashlib.sha1(key["path"].encode()).hexdigest()[:8]
    folder = home / "cache" / "formats" / f"{source.stem}-{tag}"
    stamp = folder / _SOURCE
    if folder.is_dir() and (not stamp.is_file() or json.loads(stamp.read_text()) != key):
        log.info("%s changed since its formats were derived: deriving afresh", source.name)
        shutil.rmtree(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True)
        stamp.write_text(json.dumps(key))
    return folder


# -- deriving ---------------------------------------------------------------------


def quantize(source: Path, target: Path, fmt: str, threads: int) -> float:
    """Write ``source`` re-quantized to ``fmt`` at ``target``; return the seconds it took."""
    import llama_cpp

    from dialoop.engine.llamacpp import _route_native_logs

    _route_native_logs(llama_cpp)  # a line per tensor otherwise goes to stderr
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{fmt}", None)
    if ftype is None:
        raise ConfigError(f"llama.cpp knows no weight format {fmt!r}: set weight_format to "
                          f"'auto', 'original' or one of {', '.join(CANDIDATES)}.")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = threads
    start = time.perf_counter()
    partial = target.with_suffix(f".{os.getpid()}.part")  # two processes may derive at once
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(),
                                        ctypes.byref(params))
    if rc != 0:
        partial.unlink(missing_ok=True)
        raise ModelLoadError(f"llama.cpp could not derive {fmt} from {source} (code {rc}); "
                             "set weight_format = 'original' to serve the file as it is.")
    partial.replace(target)  # never leave a half-written file under the final name
    return time.perf_counter() - start


def derive(source: Path, fmt: str, home: Path) -> Path:
    """``source`` in format ``fmt``, derived once and cached in ``home``."""
    target = _format_dir(source, home) / f"{source.stem}.{fmt}.gguf"
    if not target.is_file():
        seconds = quantize(source, target, fmt, default_threads())
        log.info("derived %s from %s in %.1f s", target.name, source.name, seconds)
    return target


# -- measuring --------------------------------------------------------------------


@dataclass
class Measurement:
    """What one file does on this host (quality still to be compared)."""

    size: int
    load: float  # seconds to construct the Llama
    decode: float
    prefill: float
    ppl: float
    top1: np.ndarray  # the most likely next token at each position of the held-out text
    answers: list[list[int]]  # greedy answers to AGREEMENT_PROMPTS, 32 tokens each
    batch_decode: float = 0.0


def heldout_text() -> str:
    """The fixed text quality is measured on (comment lines dropped)."""
    text = files("dialoop.transformer").joinpath("corpus.txt").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()


def chat_tokens(llm: Any, messages: list[dict[str, str]]) -> list[int]:
    import llama_cpp

    template = llm.metadata["tokenizer.chat_template"]
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(template, eos_token="",
                                                                 bos_token="")
    prompt = formatter(messages=messages).prompt
    return llm.tokenize(prompt.encode(), add_bos=False, special=True)


def greedy(llm: Any, tokens: list[int], n: int, stamps: list[float] | None = None) -> list[int]:
    """Up to ``n`` greedy tokens after ``tokens``; ``stamps`` gets each token's time."""
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


def decode_rate(llm: Any, prompt: list[int], n: int, runs: int) -> float:
    """Greedy decode tokens/s after ``prompt``: tokens after the first ÷ the time from the
    first to the last, median of ``runs`` after a warm-up."""
    greedy(llm, prompt, 16)  # warm-up
    rates = []
    for _ in range(runs):
        stamps: list[float] = []
        greedy(llm, prompt, n, stamps)
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    return statistics.median(rates)


def prefill_rate(llm: Any, tokens: list[int], runs: int) -> float:
    rates = []
    for _ in range(runs):
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        rates.append(len(tokens) / (time.perf_counter() - start))
    return statistics.median(rates)


def prefill_tokens(llm: Any, n: int) -> list[int]:
    """``n`` tokens of the held-out text, repeated as needed."""
    tokens = llm.tokenize(heldout_text().encode(), add_bos=False)
    return (tokens * (n // len(tokens) + 1))[:n]


def measure(path: Path, threads: int, budget: Budget) -> Measurement:
    """Speed and the raw quality figures of one GGUF file (raw llama-cpp-python, greedy)."""
    import llama_cpp

    start = time.perf_counter()
    llm = llama_cpp.Llama(str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    load = time.perf_counter() - start
    decode = decode_rate(llm, chat_tokens(llm, DECODE_PROMPT), budget.decode_tokens,
                         budget.runs)
    prompt = prefill_tokens(llm, budget.prefill_tokens)
    prefill = prefill_rate(llm, prompt, budget.runs)
    answers = [greedy(llm, chat_tokens(llm, [{"role": "user", "content": p}]), 32)
               for p in AGREEMENT_PROMPTS[: budget.prompts]]
    llm.close()

    ppl, top1 = _perplexity(path, threads, budget.ppl_tokens)
    # In a process of its own: measured after the other figures in this process, the
    # batched rate came out 35-45 % lower than in a fresh one (236 vs ~400 tok/s for
    # Q8_0), which would bias the pick against whichever format is measured later.
    batch = _in_child(path, threads, budget)
    return Measurement(size=path.stat().st_size, load=load, decode=decode,
                       prefill=prefill, ppl=ppl, top1=top1, answers=answers,
                       batch_decode=batch)


_CHILD = ("import json, sys; from pathlib import Path; "
          "from dialoop.engine.formats import Budget, batch_decode_rate; "
          "a = json.loads(sys.argv[1]); "
          "print(batch_decode_rate(Path(a['path']), a['threads'], Budget(**a['budget'])))")


def _in_child(path: Path, threads: int, budget: Budget) -> float:
    """:func:`batch_decode_rate` in a fresh Python process."""
    args = json.dumps({"path": str(path), "threads": threads, "budget": asdict(budget)})
    done = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise ModelLoadError(f"measuring batched decoding of {path.name} failed:\n"
                             f"{done.stderr.strip()[-2000:]}")
    return float(done.stdout.split()[-1])


def batch_decode_rate(path: Path, threads: int, budget: Budget) -> float:
    """Tokens/s of ``BATCH_ANSWERS`` greedy answers decoded at once by the batched engine
    (what ``dialoop serve --batch-slots 16`` runs, sampling included), median of
    ``budget.runs`` rounds after a warm-up round."""
    from concurrent.futures import ThreadPoolExecutor

    from dialoop.engine import GenerationParams
    from dialoop.engine.batched import BatchedEngine

    engine = BatchedEngine(path, slots=BATCH_ANSWERS, context_window=512, threads=threads)
    params = GenerationParams(max_tokens=2 * budget.decode_tokens)

    def answer(_: int) -> int:
        *_, last = engine.stream(DECODE_PROMPT, params)  # type: ignore[arg-type]
        return last.usage.completion_tokens if last.usage else 0

    rates = []
    try:
        with ThreadPoolExecutor(BATCH_ANSWERS) as pool:
            for run in range(budget.runs + 1):  # the first, a warm-up, sizes llama.cpp's buffers
                start = time.perf_counter()
                tokens = sum(pool.map(answer, range(BATCH_ANSWERS)))
                if run:
                    rates.append(tokens / (time.perf_counter() - start))
    finally:
        engine.close()
    return statistics.median(rates)


def ubatch_prefill(path: Path, threads: int, budget: Budget) -> dict[int, float]:
    """Prefill tokens/s for each micro-batch size in ``UBATCHES`` (``n_batch`` fixed)."""
    import llama_cpp

    rates = {}
    for n_ubatch in UBATCHES:
        llm = llama_cpp.Llama(str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                              n_batch=N_BATCH, n_ubatch=n_ubatch, verbose=False)
        rates[n_ubatch] = prefill_rate(llm, prefill_tokens(llm, budget.prefill_tokens),
                                       budget.runs)
        llm.close()
    return rates


def _perplexity(path: Path, threads: int, n: int) -> tuple[float, np.ndarray]:
    """(perplexity, top-1 token per position) on the first ``n`` held-out tokens."""
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=max(2048, n), n_batch=max(512, n), n_threads=threads,
                          n_threads_batch=threads, logits_all=True, verbose=False)
    tokens = llm.tokenize(heldout_text().encode(), add_bos=False)[:n]
    llm.reset()
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)  # (T-1, vocab)
    llm.close()
    top = logits.max(axis=1, keepdims=True)
    logz = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    nll = logz - logits[np.arange(len(tokens) - 1), tokens[1:]]
    return math.exp(float(nll.mean())), logits.argmax(axis=1)


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


def compare(fmt: str, m: Measurement, ref: Measurement) -> Figures:
    return Figures(format=fmt, size=m.size, decode=m.decode, prefill=m.prefill,
                   top1=float((m.top1 == ref.top1).mean()), ppl=m.ppl,
                   ppl_ratio=m.ppl / ref.ppl, greedy=agreement(m.answers, ref.answers)[0],
                   batch_decode=m.batch_decode)


# -- choosing ---------------------------------------------------------------------


def choose(figures: list[Figures]) -> tuple[str, str]:
    """(the fastest format that passes the quality gate, why), the original if none does."""
    original = next(f for f in figures if f.format == "original")
    passing = [f for f in figures if f.verdict() is None]
    best = min(passing, key=lambda f: f.turn_seconds)
    rejected = "; ".join(f"{f.format} rejected: {f.verdict()}" for f in figures if f.verdict())
    if best.format == "original":
        why = "no derived format is both faster and as good"
    else:
        why = (f"{original.turn_seconds / best.turn_seconds:.2f}x faster per turn than the "
               f"original (prefill {best.prefill:.0f} vs {original.prefill:.0f} tok/s, decode "
               f"{best.decode:.0f} vs {original.decode:.0f} tok/s), top-1 agreement "
               f"{best.top1:.3f}, perplexity x{best.ppl_ratio:.3f}")
    return best.format, why + (f" ({rejected})" if rejected else "")


def choose_batched(figures: list[Figures]) -> tuple[str, str]:
    """(the format that passes the quality gate and decodes the most tokens/s for
    ``BATCH_ANSWERS`` answers at once, why); ("", "") when that was not measured."""
    passing = [f for f in figures if f.verdict() is None and f.batch_decode > 0]
    if not passing:
        return "", ""
    best = max(passing, key=lambda f: f.batch_decode)
    others = ", ".join(f"{f.format} {f.batch_decode:.0f}" for f in passing if f is not best)
    return best.format, (f"{best.batch_decode:.0f} tok/s for {BATCH_ANSWERS} answers at once"
                         + (f" (other formats that pass: {others})" if others else ""))


def pick(source: Path, home: Path, *, budget: Budget | None = None,
         candidates: tuple[str, ...] = CANDIDATES, threads: int | None = None) -> Record:
    """Derive ``candidates`` from ``source``, measure them and the original on this host
    with ``threads`` (default: the physical cores), choose, tune ``n_ubatch`` for the
    choice, and cache it all in ``home``."""
    budget = budget or Budget()
    threads = threads or default_threads()
    paths = {"original": source} | {fmt: derive(source, fmt, home) for fmt in candidates}
    measured = {fmt: measure(path, threads, budget) for fmt, path in paths.items()}
    figures = [compare(fmt, m, measured["original"]) for fmt, m in measured.items()]
    choice, reason = choose(figures)
    batch_choice, batch_reason = choose_batched(figures)
    ubatch = ubatch_prefill(paths[choice], threads, budget)
    key = _source_key(source)
    key["sha256"] = hashlib.sha256(source.read_bytes()).hexdigest()
    record = Record(host=_host(), source=key, threads=threads, formats=figures, choice=choice,
                    reason=reason, n_batch=N_BATCH, n_ubatch=max(ubatch, key=ubatch.__getitem__),
                    ubatch_prefill={str(k): v for k, v in ubatch.items()},
                    measured=f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
                    batch_choice=batch_choice, batch_reason=batch_reason)
    out = _format_dir(source, home) / _RECORD
    out.write_text(json.dumps(asdict(record), indent=2) + "\n")
    return record


def load_record(source: Path, home: Path) -> Record | None:
    """The cached pick for ``source`` if it was made for this file, CPU and llama.cpp."""
    if not (home / "cache" / "formats").is_dir():
        return None  # nothing was ever derived or picked here: create nothing
    out = _format_dir(source, home) / _RECORD
    if not out.is_file():
        return None
    try:
        data = json.loads(out.read_text())
        if data.get("host") != _host():
            log.info("the cached weight-format pick was made on another host or llama.cpp")
            return None
        data["formats"] = [Figures(**f) for f in data["formats"]]
        return Record(**data)
    except (ValueError, TypeError, KeyError):  # unreadable, or written by another version
        log.info("ignoring an unreadable weight-format pick: %s", out)
        return None


def served_file(source: Path, home: Path, weight_format: str, *,
                batched: bool = False) -> Served:
    """What to serve for ``source`` under the ``weight_format`` setting (never measures);
    ``batched``: for the batched engine, which has a pick of its own."""
    threads = default_threads()
    if weight_format == "original":
        return Served(source, "original", "weight_format = original", threads)
    record = load_record(source, home)
    if weight_format == "auto":
        if record is None:
            log.info("serving %s as it is: run `dialoop models --bench` to pick the fastest "
                     "weight format for this host", source.name)
            return Served(source, "original", "no weight-format pick for this host yet "
                          "(run `dialoop models --bench`)", threads)
        if batched and record.batch_choice:
            fmt = record.batch_choice
            path = source if fmt == "original" else derive(source, fmt, home)
            return Served(path, fmt, f"picked {record.measured} for batched decoding: "
                          f"{record.batch_reason}", record.threads, record=record)
        path = source if record.choice == "original" else derive(source, record.choice, home)
        return Served(path, record.choice, f"picked {record.measured}: {record.reason}",
                      record.threads, record.n_batch, record.n_ubatch, record)
    tuned = record is not None and record.choice == weight_format
    return Served(derive(source, weight_format, home), weight_format,
                  f"weight_format = {weight_format}", threads,
                  record.n_batch if tuned and record else None,
                  record.n_ubatch if tuned and record else None, record)
