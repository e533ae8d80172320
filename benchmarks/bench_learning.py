"""Interactive learning on the bundled model: memory path, adapter path, both, and a naive
baseline, side by side in one run.

Facts (benchmarks/data/learning_facts.jsonl, all fictional) are taught one after
another as a user would. After N of them:

- Reliability: the taught question's answer contains the fact's key string;
- Generalization: its three paraphrases' answers do too;
- Locality: controls the base model answered correctly still are, and "near"
  questions (a similar-looking different entity) do not receive the key string.

Paths: **memory** (the correction memory, no training), **adapter** (consolidated
LoRA through the real pipeline, memory off), **both**, and **naive** (a plain LoRA
fine-tune on the corrections alone: lr 1e-3, 30 steps, no replay, no negatives, no
paraphrases, no gate). Also: seconds from a correction to a correct paraphrase
answer (memory path), consolidation time, adapter cost (size, swap time, prefix
cache, decode speed).

    flock /tmp/dialoop-bench.lock python benchmarks/bench_learning.py --n 20 100
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "learning_facts.jsonl"
MAX_TOKENS = 40
USER = "bench"


def load() -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["type"] == "fact"], [r for r in rows if r["type"] == "control"]


def has(key: str, text: str) -> bool:
    return key.lower() in text.lower()


def score(answer, facts: list[dict], controls: list[dict]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """``answer(question) -> text`` over facts and (base-correct) controls."""
    rel = [has(f["key"], answer(f["question"])) for f in facts]
    gen = [has(f["key"], answer(p)) for f in facts for p in f["paraphrases"]]
    near = [not has(f["key"], answer(f["near"])) for f in facts]
    sibling = [not has(f["key"], answer(f["sibling"])) for f in facts]
    ctrl = [has(c["key"], answer(c["question"])) for c in controls]
    loc = near + ctrl
    return {"rel": _mean(rel), "gen": _mean(gen), "loc": _mean(loc),
            "loc_near": _mean(near), "loc_controls": _mean(ctrl),
            "loc_sibling": _mean(sibling)}


def _mean(xs: list[bool]) -> float:
    return round(sum(xs) / len(xs), 3) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--adapter-n", type=int, nargs="+", default=None,
                    help="Checkpoints for the adapter paths (default: same as --n).")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    ap.add_argument("--skip", nargs="*", default=[], choices=["memory", "adapter", "naive"],
                    help="Leave these paths out (e.g. to tune learn_* settings, set as "
                         "DIALOOP_LEARN_* variables).")
    ap.add_argument("--calibrate", action="store_true",
                    help="Only print how the memory's match rule separates paraphrases from "
                         "near questions and controls, per similarity threshold.")
    args = ap.parse_args()
    if args.calibrate:
        calibrate()
        return
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    facts, controls = load()
    home = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    os.environ["DIALOOP_HOME"] = str(home)
    from dialoop.assistant import open_assistant
    from dialoop.config import load_settings
    from dialoop.engine.llamacpp import LlamaCppEngine
    from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
    from dialoop.learn.replay import generate

    # One thread: on a shared 2-core machine a 2-thread pool collapses (see config.py).
    engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME, context_window=2048,
                            threads=1)

    def base(q: str) -> str:
        return generate(engine, q, max_tokens=MAX_TOKENS)

    controls = [c for c in controls if has(c["key"], base(c["question"]))]
    print(f"{len(facts)} facts, {len(controls)} controls the base model answers correctly")
    results: dict[str, Any] = {"controls_base_correct": len(controls), "rows": []}
    base_row = score(base, facts[: max(args.n)], controls)
    _row(results, "base model", max(args.n), base_row)

    settings = load_settings(max_tokens=MAX_TOKENS, learn_gate_reliability=0.0,
                             learn_gate_generalization=0.0, learn_gate_locality=0.0)
    bot = open_assistant(settings, engine=engine)
    learning = bot.parts.learning

    def ask(q: str, *, memory: bool, adapter: str | None = None, mode: str | None = None
            ) -> str:
        if mode is not None:  # how the memory applies lessons (read by the loop per turn)
            learning.settings = settings.model_copy(update={"learn_memory_mode": mode})
        try:
            return bot.ask(q, user=USER, memory=memory, adapter=adapter).text
        finally:
            learning.settings = settings

    # -- memory path: sequential corrections ------------------------------------------
    latencies: list[float] = []
    taught = 0
    for n in sorted(args.n):
        if "memory" in args.skip:
            for f in facts[taught:n]:
                learning.teach(f["question"], f["answer"], user=USER)
            taught = n
            continue
        for f in facts[taught:n]:
            start = time.perf_counter()
            learning.teach(f["question"], f["answer"], user=USER)
            ok = has(f["key"], ask(f["paraphrases"][0], memory=True))
            latencies.append(time.perf_counter() - start if ok else float("inf"))
        taught = n
        for mode in ("auto", "prompt") if n == min(args.n) else ("auto",):
            row = score(lambda q, m=mode: ask(q, memory=True, adapter="none", mode=m),
                        facts[:n], controls)
            _row(results, f"memory ({mode})", n, row)
    if latencies:
        finite = sorted(x for x in latencies if x != float("inf"))
        results["correction_to_paraphrase_p50_s"] = round(statistics.median(latencies), 3)
        results["correction_to_paraphrase_p90_s"] = round(
            sorted(latencies)[int(0.9 * (len(latencies) - 1))], 3)
        print(f"correction → correct paraphrase (memory): p50 "
              f"{results['correction_to_paraphrase_p50_s']} s, "
              f"{len(finite)}/{len(latencies)} within the next answer")

    # -- adapter path, both, naive -------------------------------------------------------
    for n in sorted(args.adapter_n or args.n) if "adapter" not in args.skip else []:
        _forget_all_but(bot, n)
        start = time.perf_counter()
        run = learning.consolidate(user=USER)
        seconds = time.perf_counter() - start
        line = run.report["lines"].get(f"user:{USER}", {})
        results[f"consolidation_{n}_s"] = round(seconds, 1)
        results[f"gate_{n}"] = line.get("gate")
        print(f"consolidation of {n} lessons: {seconds:.0f} s "
              f"(training {line.get('train', {}).get('seconds')} s, gate "
              f"{(line.get('gate') or {}).get('seconds')} s) → {line.get('outcome')}; "
              f"gate metrics {(line.get('gate') or {}).get('metrics')}")
        key = f"user:{USER}@v{line['version']}"
        _row(results, "adapter (memory off)", n,
             score(lambda q, k=key: ask(q, memory=False, adapter=k), facts[:n], controls))
        _row(results, "both", n,
             score(lambda q, k=key: ask(q, memory=True, adapter=k), facts[:n], controls))
        if n == min(args.adapter_n or args.n):
            results["cost"] = _cost(bot, engine, key, settings)
        if "naive" in args.skip:
            continue
        naive_key, naive_s = _naive(engine, facts[:n], home)
        results[f"naive_training_{n}_s"] = round(naive_s, 1)
        _row(results, "naive LoRA (memory off)", n,
             score(lambda q, k=naive_key: generate(engine, q, max_tokens=MAX_TOKENS, adapter=k),
                   facts[:n], controls))
        engine.unload_adapter(naive_key)

    print(json.dumps({k: v for k, v in results.items()
                      if k != "rows" and not k.startswith("gate_")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    bot.close()
    engine.close()


def calibrate() -> None:
    """How the memory's match rule separates paraphrases (want matched) from near,
    same-entity and control questions (want unmatched), per similarity threshold."""
    import numpy as np

    from dialoop.engine.embedding import default_embedder
    from dialoop.learn.memory import key_terms, masked, terms_match

    facts, controls = load()
    embed = default_embedder().embed
    kinds: dict[str, list[tuple[float, bool]]] = {
        "paraphrase": [], "near": [], "sibling": [], "control": []}
    for f in facts:
        terms = key_terms(f["question"])
        q = embed([masked(f["question"], terms)])[0]
        for kind, texts in (("paraphrase", f["paraphrases"]), ("near", [f["near"]]),
                            ("sibling", [f["sibling"]]),
                            ("control", [c["question"] for c in controls[:5]])):
            for text in texts:
                sim = float(embed([masked(text, terms, f["question"])])[0] @ q)
                kinds[kind].append((sim, terms_match(terms, f["question"], text)))
    print("share matched (similarity ≥ threshold and key terms match)")
    print("threshold " + " ".join(f"{k:>11}" for k in kinds))
    for t in (0.6, 0.65, 0.7, 0.72, 0.75, 0.8, 0.85, 0.9):
        print(f"  {t:.2f}   " + " ".join(
            f"{np.mean([s >= t and ok for s, ok in v]):>11.3f}" for v in kinds.values()))


def _row(results: dict, path: str, n: int, row: dict) -> None:
    results["rows"].append({"path": path, "n": n, **row})
    print(f"{path:<26} N={n:<4} Rel {row['rel']:.2f}  Gen {row['gen']:.2f}  "
          f"Loc {row['loc']:.2f} (near {row['loc_near']:.2f}, controls "
          f"{row['loc_controls']:.2f}) · same-entity other question "
          f"{row['loc_sibling']:.2f}", flush=True)


def _forget_all_but(bot, n: int) -> None:  # type: ignore[no-untyped-def]
    """Keep the first ``n`` taught lessons active (the adapter checkpoints' lesson sets)."""
    from dialoop.store.models import Lesson

    with bot.parts.db.write() as s:
        for i, lesson in enumerate(s.query(Lesson).order_by(Lesson.id)):
            lesson.status = "active" if i < n else "forgotten"


def _naive(engine, facts: list[dict], home: Path) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """Plain LoRA on the corrections only: lr 1e-3, 30 steps, every layer, no replay."""
    import torch
    from peft import LoraConfig, get_peft_model

    from dialoop.engine.lora import export_lora_gguf
    from dialoop.engine.models import bundled_gguf, resolve_model
    from dialoop.engine.torch import load_model
    from dialoop.train.chat_data import encode_chat

    torch.set_num_threads(1)
    model, tok = load_model(resolve_model("default", home=home), home / "cache" / "models")
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                            target_modules=["q_proj", "v_proj"]))
    items = [encode_chat(tok, [{"role": "user", "content": f["question"]},
                               {"role": "assistant", "content": f["answer"]}], train_on="last")
             for f in facts]
    opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-3)
    start = time.perf_counter()
    peft.train()
    for step in range(30):
        batch = [items[(step * 4 + i) % len(items)] for i in range(min(4, len(items)))]
        T = max(len(x.input_ids) for x in batch)
        ids = torch.tensor([x.input_ids + [0] * (T - len(x.input_ids)) for x in batch])
        labels = torch.tensor([x.labels + [-100] * (T - len(x.labels)) for x in batch])
        mask = (torch.arange(T)[None, :] < torch.tensor([len(x.input_ids) for x in batch])[:, None])
        loss = peft(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    seconds = time.perf_counter() - start
    out = home / f"naive-{len(facts)}"
    peft.save_pretrained(out)
    export_lora_gguf(out, out / "adapter.gguf", base_gguf=bundled_gguf())
    key = f"naive-{len(facts)}"
    engine.load_adapter(key, out / "adapter.gguf")
    return key, seconds


def _cost(bot, engine, key: str, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Adapter size, swap (load) time, prefix-cache effect and decode speed vs the base."""
    from dialoop.engine import GenerationParams

    row = bot.parts.adapters.resolve(key)
    gguf = bot.parts.adapters.files(row, "llamacpp")
    swaps = []
    for _ in range(5):
        start = time.perf_counter()
        engine.load_adapter("swap-probe", gguf)
        swaps.append(time.perf_counter() - start)
        engine.unload_adapter("swap-probe")
    params = GenerationParams(max_tokens=128, temperature=0.0)
    prompt = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]

    def speed(adapter: str | None) -> float:
        rates = []
        for _ in range(3):
            usage = [c.usage for c in engine.stream(prompt, params, adapter=adapter) if c.usage]
            u = usage[0]
            rates.append((u.completion_tokens - 1) / (u.seconds - (u.first_token_seconds or 0)))
        return statistics.median(rates)

    base_rate, adapter_rate = speed(None), speed(key)
    # Prefix cache: the same long prompt again on the same adapter reuses its KV state;
    # after a switch of adapter it cannot (a KV state belongs to the weights that made it).
    msgs = [{"role": "system", "content": "You are terse. " * 40},
            {"role": "user", "content": "Hi"}]
    short = GenerationParams(max_tokens=2)
    [c for c in engine.stream(msgs, short, adapter=key)]
    same = [c.usage for c in engine.stream(msgs, short, adapter=key) if c.usage][0]
    [c for c in engine.stream(msgs, short, adapter=None)]
    switched = [c.usage for c in engine.stream(msgs, short, adapter=key) if c.usage][0]
    cost = {
        "adapter_gguf_bytes": gguf.stat().st_size,
        "adapter_peft_bytes": (gguf.parent / "adapter_model.safetensors").stat().st_size,
        "swap_load_s_median": round(statistics.median(swaps), 4),
        "decode_tok_s_base": round(base_rate, 1),
        "decode_tok_s_adapter": round(adapter_rate, 1),
        "decode_ratio": round(adapter_rate / base_rate, 3),
        "prefix_cached_tokens_same_adapter": same.cached_tokens,
        "prefix_cached_tokens_after_switch_back": switched.cached_tokens,
        "prompt_tokens": same.prompt_tokens,
    }
    print("adapter cost:", cost, flush=True)
    return cost


if __name__ == "__main__":
    main()
