"""What the attacks of issue 12 cost a server now, measured against a real `dialoop serve`.

1. **Context fitting** (in process, the bundled model's tokenizer): the time to fit a
   history of 1,000 and 10,000 short messages, and one message of 1 MB, into the window.
   Fitting is linear in what is kept, so 10,000 messages cost about what 1,000 do.
2. **A flood of wrong keys**: a real `dialoop serve` (one key for ann) answers ann's short
   chat requests, one after another, first alone and then while ``--flood`` threads send
   requests with made-up keys as fast as they can. Prints the median chat latency of each
   phase, their ratio, and how the flood was answered (401 before the limit, then 429).
   Before issue 12 every wrong key cost 140 ms of scrypt and normal chat slowed from
   0.47 s to 3.9 s (8x) under a 16-thread flood.

    flock /tmp/dialoop-bench.lock python benchmarks/bench_security.py
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tests.integration.cli import free_port, serve  # noqa: E402


def bench_fitting() -> None:
    from dialoop.dialogue.context import build_prompt
    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import bundled_gguf

    engine = LlamaCppEngine(bundled_gguf(), context_window=8192, threads=1)
    print("context fitting (8,192-token window, median of 5)")
    cases = {
        "1,000 messages": ([_msg(i) for i in range(1_000)], "What did I say first?"),
        "10,000 messages": ([_msg(i) for i in range(10_000)], "What did I say first?"),
        "one 1 MB message": ([], "x y z " * (2**20 // 6)),
    }
    for name, (history, message) in cases.items():
        times = []
        for _ in range(5):
            start = time.perf_counter()
            prompt = build_prompt(engine, system="Be brief.", history=history, message=message,
                                  reserve=512)
            times.append(time.perf_counter() - start)
        print(f"  {name:18} {statistics.median(times):6.3f} s   prompt {prompt.tokens} tokens, "
              f"{prompt.dropped} messages dropped")
    engine.close()


def _msg(i: int) -> dict[str, str]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"Message number {i}."}


def bench_flood(threads: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "DIALOOP_HOME": home}
        made = subprocess.run([sys.executable, "-m", "dialoop", "users", "add", "ann"], env=env,
                              capture_output=True, text=True, check=True)
        key = next(w for w in made.stdout.split() if w.startswith("dlp_"))
        port = free_port()
        process = serve(home, port, "--no-learn")  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120,
                              headers={"Authorization": f"Bearer {key}"}) as ann:
                _chat(ann)  # warm up: the first answer loads what it needs
                alone = [_chat(ann) for _ in range(requests)]
                stop, answers = threading.Event(), collections.Counter[int]()
                flooders = [threading.Thread(target=_flood, args=(url, stop, answers, n))
                            for n in range(threads)]
                for t in flooders:
                    t.start()
                time.sleep(1)
                flooded = [_chat(ann) for _ in range(requests)]
                stop.set()
                for t in flooders:
                    t.join()
        finally:
            process.terminate()
            process.wait(timeout=30)
    a, f = statistics.median(alone), statistics.median(flooded)
    print(f"wrong-key flood ({threads} threads, {requests} chat requests per phase)")
    print(f"  chat latency alone    {a:.3f} s (median)")
    print(f"  chat latency flooded  {f:.3f} s (median)   ratio {f / a:.2f}x  (before: 8.3x)")
    print(f"  flood answered: {dict(sorted(answers.items()))}")


def _chat(client: httpx.Client) -> float:
    start = time.perf_counter()
    r = client.post("/v1/chat/completions", json={
        "model": "default", "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of Japan?"}]})
    r.raise_for_status()
    return time.perf_counter() - start


def _flood(url: str, stop: threading.Event, answers: collections.Counter[int], n: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            r = client.get("/api/me", headers={
                "Authorization": f"Bearer dlp_{n:04x}{i:08x}_notarealsecretnotarealsecret"})
            answers[r.status_code] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flood", type=int, default=16, help="threads sending wrong keys")
    parser.add_argument("--requests", type=int, default=9, help="chat requests per phase")
    args = parser.parse_args()
    bench_fitting()
    bench_flood(args.flood, args.requests)


if __name__ == "__main__":
    main()
