"""Serving throughput: N concurrent streaming clients against `dialoop serve` over loopback.

For each server configuration (``--configs``: copies of the model answering at once,
optionally ``x`` threads per copy; by default the serve default ``1`` engine on all
cores, ``1x1`` one engine on one thread, ``2`` two one-thread engines, and ``b16`` one
batched engine decoding up to 16 answers in one llama.cpp context, ``b16x1`` on one
thread) the
benchmark starts a real ``dialoop serve`` subprocess, then measures

1. one client asking one question after another (``--single-seconds``), and
2. ``--clients`` clients asking at once for ``--seconds``,

and prints requests/s, time to first token (p50/p95), tokens/s, the ratio of the
aggregate tokens/s to the single client's, and errors, and each config's aggregate over
the first config's single client. Targets: 0 errors, aggregate >= 1.5x a single client
(issue 6), >= 3x for the batched engine (issue 20).

Each server serves the weight format ``dialoop serve`` would serve on this host
(``--format host``): the pick of ``dialoop models --bench``, which has a separate pick for
batched decoding, else the original file.

    flock /tmp/dialoop-bench.lock python benchmarks/bench_server.py
    flock /tmp/dialoop-bench.lock python benchmarks/bench_server.py --configs 2 --seconds 30

Answers are sampled (temperature 0.8, a different seed each request) from a list of
varied questions, capped at ``--max-tokens``, each in a new session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx

QUESTIONS = [
    "What is the capital of Japan?", "Write a short poem about the sea.",
    "Explain photosynthesis in two sentences.", "Give me three tips for learning to cook.",
    "What is a prime number?", "Describe a cat to someone who has never seen one.",
    "Why is the sky blue?", "Suggest a name for a bakery.", "How do airplanes fly?",
    "What should I pack for a weekend in the mountains?", "Tell me a fun fact about octopuses.",
    "How do I make a cup of tea?", "What is the difference between weather and climate?",
    "Write a haiku about autumn.", "What are the planets of the solar system?",
    "Give me an idea for a birthday present.",
]


@dataclass
class Result:
    ok: bool
    ttft: float | None = None
    tokens: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Phase:
    seconds: float
    results: list[Result] = field(default_factory=list)
    unfinished: int = 0  # requests abandoned after the grace period

    @property
    def done(self) -> list[Result]:
        return [r for r in self.results if r.ok]

    @property
    def errors(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    @property
    def tokens_per_second(self) -> float:
        return sum(r.tokens for r in self.done) / self.seconds

    @property
    def requests_per_second(self) -> float:
        return len(self.done) / self.seconds

    def ttft(self, q: float) -> float:
        values = sorted(r.ttft for r in self.done if r.ttft is not None)
        if not values:
            return float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] \
            if len(values) > 1 else values[0]


async def one_request(client: httpx.AsyncClient, rng: random.Random, max_tokens: int) -> Result:
    body = {"model": "default", "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": max_tokens, "temperature": 0.8, "seed": rng.randrange(2**31),
            "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}]}
    start = time.perf_counter()
    ttft, tokens = None, None
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return Result(False, error=f"HTTP {response.status_code}: {response.text[:200]}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    return Result(False, error=event["error"]["message"])
                if ttft is None and event["choices"] and event["choices"][0]["delta"].get(
                        "content"):
                    ttft = time.perf_counter() - start
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
    except httpx.HTTPError as exc:
        return Result(False, error=f"{type(exc).__name__}: {exc}")
    if tokens is None:
        return Result(False, error="no usage in the stream")
    return Result(True, ttft, tokens, time.perf_counter() - start)


async def run_phase(url: str, clients: int, seconds: float, max_tokens: int, seed: int) -> Phase:
    """``clients`` loops of back-to-back requests for ``seconds``.

    Requests running at the deadline may finish during a grace period (a quarter of
    the phase, at least 15 s) and then count; any still running after it are
    abandoned (their connection closes, which stops them) and counted as unfinished.
    """
    phase = Phase(seconds)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def loop(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.perf_counter() < deadline:
                phase.results.append(await one_request(client, rng, max_tokens))

        started = time.perf_counter()
        tasks = [asyncio.create_task(loop(i)) for i in range(clients)]
        _, running = await asyncio.wait(tasks, timeout=seconds + max(15.0, seconds / 4))
        for task in running:
            task.cancel()
        phase.unfinished = len(running)
        phase.seconds = time.perf_counter() - started
    return phase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(engines: int, threads: int | None, home: str, max_waiting: int,
                 batch: int = 0, weight_format: str = "original"
                 ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DIALOOP_HOME": home, "DIALOOP_BATCH_SLOTS": str(batch),
           "DIALOOP_WEIGHT_FORMAT": weight_format}
    if threads is not None:  # the pool divides the threads setting among its engines
        env["DIALOOP_THREADS"] = str(threads * engines)
    process = subprocess.Popen(
        [sys.executable, "-c", "from dialoop.cli import main; main()", "serve", "--port",
         str(port), "--engines", str(engines), "--max-waiting", str(max_waiting)],
        env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/health", timeout=2).raise_for_status()
            return process, url
        except httpx.HTTPError:
            if process.poll() is not None:
                raise SystemExit("the server exited at start") from None
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


def host_format(batched: bool) -> str:
    """The weight format `dialoop serve` serves on this host with the user's settings: the
    pick of `dialoop models --bench` (its batched pick for a batched server), else the
    original. The benchmark's servers run in a fresh home, which has no pick of its own."""
    from dialoop.config import load_settings
    from dialoop.engine import formats
    from dialoop.engine.models import bundled_gguf

    settings = load_settings()
    if settings.weight_format != "auto":
        return settings.weight_format
    record = formats.load_record(bundled_gguf(), settings.home)
    if record is None:
        return "original"
    return (record.batch_choice or record.choice) if batched else record.choice


def measure(engines: int, threads: int | None, batch: int, weight_format: str,
            args: argparse.Namespace) -> tuple[Phase, Phase]:
    with tempfile.TemporaryDirectory() as home:
        process, url = start_server(engines, threads, home, max_waiting=args.clients,
                                    batch=batch, weight_format=weight_format)
        try:
            asyncio.run(run_phase(url, 1, 5, args.max_tokens, seed=0))  # warm up
            single = asyncio.run(run_phase(url, 1, args.single_seconds, args.max_tokens, 1))
            many = asyncio.run(run_phase(url, args.clients, args.seconds, args.max_tokens, 2))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    return single, many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="1,1x1,2",
                        help="server configurations to compare: ENGINES or ENGINESxTHREADS "
                             "(threads per engine; default: the cores divided among them), "
                             "or bSLOTS[xTHREADS] for the batched engine")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=120.0, help="concurrent phase")
    parser.add_argument("--single-seconds", type=float, default=30.0, help="one-client phase")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--format", default="host",
                        help="weight format every server serves (original, Q8_0, F16, ...); "
                             "default: what `dialoop serve` serves on this host, per config")
    args = parser.parse_args()

    rows = []
    for config in args.configs.split(","):
        engines, _, per = config.partition("x")
        threads = int(per) if per else None
        batch = int(engines[1:]) if engines.startswith("b") else 0
        engines = "1" if batch else engines
        fmt = host_format(bool(batch)) if args.format == "host" else args.format
        print(f"{config} ({fmt}): 1 client for {args.single_seconds:g} s, then "
              f"{args.clients} clients for {args.seconds:g} s …", file=sys.stderr, flush=True)
        single, many = measure(int(engines), threads, batch, fmt, args)
        rows.append((f"{config} {fmt}", single, many))
        for name, phase in (("1 client", single), (f"{args.clients} clients", many)):
            print(f"  {name}: {len(phase.done)} answers, {len(phase.errors)} errors, "
                  f"{phase.unfinished} cut, {phase.tokens_per_second:.1f} tok/s",
                  file=sys.stderr, flush=True)
        for error in {r.error for r in many.errors + single.errors}:
            print(f"  error: {error}", file=sys.stderr)

    print(f"\n{args.clients} streaming clients over loopback, {args.seconds:g} s, "
          f"max_tokens={args.max_tokens}, {os.cpu_count()} cores")
    header = (f"{'config':>13} {'1-client tok/s':>14} {'req/s':>6} {'TTFT p50':>9} "
              f"{'TTFT p95':>9} {'agg tok/s':>9} {'agg÷single':>10} {'errors':>6} {'cut':>4}")
    print(header)
    print("-" * len(header))
    for config, single, many in rows:
        ratio = many.tokens_per_second / single.tokens_per_second if single.done else float("nan")
        print(f"{config:>13} {single.tokens_per_second:>14.1f} {many.requests_per_second:>6.2f} "
              f"{many.ttft(0.5):>8.2f}s {many.ttft(0.95):>8.2f}s "
              f"{many.tokens_per_second:>9.1f} {ratio:>9.2f}x {len(many.errors):>6} "
              f"{many.unfinished:>4}")
    if len(rows) > 1:
        base = rows[0][1].tokens_per_second or float("nan")
        for config, _, many in rows[1:]:
            print(f"aggregate of config {config} ÷ single client of config {rows[0][0]}: "
                  f"{many.tokens_per_second / base:.2f}x")
    print("targets: 0 errors; aggregate ≥ 1.5× single client (issue 6), ≥ 3× batched "
          "(issue 20) "
          "(cut: requests still unfinished after the grace period, abandoned)")


if __name__ == "__main__":
    main()
