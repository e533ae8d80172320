"""Learning from corrections, measured the model-editing way: base model, correction memory,
scoped adapter, both, and a naive LoRA, side by side in one run, after N sequential lessons.

Data (``--data``):

- ``bench``: benchmarks/data/learning_facts.jsonl, fictional facts we wrote, each with three
  paraphrases, a "near" question (another name) and a "sibling" (another question about
  the same name), plus control questions the base model answers right;
- ``independent``: benchmarks/data/learning_facts_independent.jsonl, 20 facts written apart
  from the thresholds (other relations; three rewordings each that say the relation in
  other words; a near question and two same-entity other-relation questions each);
- ``heldout``: benchmarks/data/learning_facts_heldout.jsonl, 12 more in the same shape,
  written after the matcher's relation words; its misses of 3 December (band roles,
  insurance, check-in/out, start/end) then led to relation words and contrast pairs, so
  it is no longer held out;
- ``heldout2``: benchmarks/data/learning_facts_heldout2.jsonl, 12 more written after those
  changes and measured once, untuned;
- ``knowedit``: ../shared/data/knowedit (CounterFact and WikiFactDiff, English; public
  knowledge-editing records nobody here wrote), taught ``src → alt`` one after another.

Metrics on an even sample of the taught facts (``--sample``):

- Reliability: the taught question's answer contains the taught answer;
- Generalization: the paraphrase's (``rephrase``'s) answer does too;
- Locality: bench — controls still answered right and near questions not given the taught
  answer; knowedit — the answer to ``loc`` is identical to the base model's (greedy);
- Portability (knowedit): ``port`` answered with ``port_ans`` (no target);
- Sibling (bench, independent, heldout): other questions about the taught name do not get
  the taught answer.

``--match`` measures the memory's matching alone (no generation, a minute): every set
taught through the learning loop, Generalization / Locality (near, sibling, control,
knowedit ``loc``) per similarity threshold, and correction → match latency; thresholds are
calibrated on ``bench`` and read off on the others.

Paths: **memory** (the correction memory, adapter off), **adapter** (the consolidated
adapter behind its router, memory off: exactly how it serves), **both**, and **naive**
(a plain LoRA on the corrections alone, no router: q/v projections of every layer, rank
8, lr 1e-3, 30 steps of 8). Consolidation runs with the default settings and the gate
at its default thresholds; its outcome and time are printed. ``--curve`` consolidates
at more checkpoints for the adapter path alone (``dialoop learn report --plot`` draws the
versions' gate metrics; the bench prints its own).

    flock /tmp/dialoop-bench.lock python benchmarks/bench_learning.py --n 20 100
    flock /tmp/dialoop-bench.lock python benchmarks/bench_learning.py --data knowedit \\
        --n 20 100 500
    python benchmarks/bench_learning.py --match --n 500 [--misses]
    flock /tmp/dialoop-bench.lock python benchmarks/bench_learning.py --data independent \\
        --n 20 --skip adapter naive
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DATA = Path(__file__).parent / "data" / "learning_facts.jsonl"
# Written apart from the thresholds (and before the matcher's relation words): other
# relations, rewordings that say the relation in other words, near and same-entity questions.
INDEPENDENT_DATA = Path(__file__).parent / "data" / "learning_facts_independent.jsonl"
# Written after the matcher's relation words, in the same shape, and never tuned on.
HELDOUT_DATA = Path(__file__).parent / "data" / "learning_facts_heldout.jsonl"
HELDOUT2_DATA = Path(__file__).parent / "data" / "learning_facts_heldout2.jsonl"
KNOWEDIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "knowedit"
MAX_TOKENS = 40
USER = "bench"
Answer = Callable[[str], str]


# -- data --------------------------------------------------------------------------------

def load_bench() -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in BENCH_DATA.read_text(encoding="utf-8").splitlines()]
    facts = [{"question": r["question"], "answer": r["answer"], "key": r["key"],
              "paraphrases": r["paraphrases"], "near": r["near"], "sibling": r["sibling"]}
             for r in rows if r["type"] == "fact"]
    return facts, [r for r in rows if r["type"] == "control"]


def load_independent(path: Path = INDEPENDENT_DATA) -> tuple[list[dict], list[dict]]:
    """The independent (or held-out) set in the bench set's shape, with all its near
    ("nears") and same-entity other-relation ("siblings") questions."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{"question": r["question"], "answer": r["answer"], "key": r["key"],
             "paraphrases": r["paraphrases"], "near": r["near"][0], "sibling": r["others"][0],
             "nears": r["near"], "siblings": r["others"]} for r in rows], []


def load_knowedit(seed: int = 0) -> list[dict]:
    """Both files, shuffled once with a fixed seed (they alternate kinds of edit)."""
    if not KNOWEDIT.is_dir():
        raise SystemExit(f"{KNOWEDIT} is missing: put ../shared beside the project.")
    records = []
    for name in ("counterfact_en.json", "wikifactdiff_en.json"):
        records += json.loads((KNOWEDIT / name).read_text(encoding="utf-8"))
    random.Random(seed).shuffle(records)
    return [{"question": r["src"], "answer": r["alt"], "key": r["alt"],
             "paraphrases": [r["rephrase"]], "loc": r["loc"], "port": r["port"],
             "port_key": r["port_ans"]} for r in records]


def has(key: str, text: str) -> bool:
    return key.lower() in text.lower()


def even(items: list[dict], n: int) -> list[dict]:
    step = max(1, len(items) / n)
    return [items[int(i * step)] for i in range(min(n, len(items)))]


# -- scoring -------------------------------------------------------------------------------

def score(answer: Answer, facts: list[dict], controls: list[dict],
          base: dict[str, str]) -> dict[str, float]:
    """``answer(question) -> text`` over the facts (and, for bench data, the controls)."""
    rel = [has(f["key"], answer(f["question"])) for f in facts]
    gen = [has(f["key"], answer(p)) for f in facts for p in f["paraphrases"]]
    row = {"rel": _mean(rel), "gen": _mean(gen)}
    if "loc" in facts[0]:  # knowedit: identical to the base model's answer
        row["loc"] = _mean([answer(f["loc"]) == base[f["loc"]] for f in facts])
        row["port"] = _mean([has(f["port_key"], answer(f["port"])) for f in facts])
    else:
        near = [not has(f["key"], answer(q)) for f in facts for q in f.get("nears", [f["near"]])]
        ctrl = [has(c["key"], answer(c["question"])) for c in controls]
        row["loc"] = _mean(near + ctrl)
        row["loc_near"], row["loc_controls"] = _mean(near), _mean(ctrl)
        row["sibling"] = _mean([not has(f["key"], answer(q))
                                for f in facts for q in f.get("siblings", [f["sibling"]])])
    return row


def _mean(xs: list[bool]) -> float:
    return round(sum(xs) / len(xs), 3) if xs else float("nan")


def show(results: dict, path: str, n: int, row: dict[str, float]) -> None:
    results["rows"].append({"path": path, "n": n, **row})
    extra = "".join(f"  {k} {v:.2f}" for k, v in row.items() if k not in ("rel", "gen", "loc"))
    print(f"{path:<24} N={n:<4} Rel {row['rel']:.2f}  Gen {row['gen']:.2f}  "
          f"Loc {row['loc']:.2f}{extra}", flush=True)


# -- the run -------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=["bench", "independent", "heldout", "heldout2", "knowedit"],
                    default="bench")
    ap.add_argument("--n", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--curve", type=int, nargs="*", default=[],
                    help="More checkpoints for the adapter path alone (e.g. 10 50 200).")
    ap.add_argument("--sample", type=int, default=100, help="Facts scored per checkpoint.")
    ap.add_argument("--skip", nargs="*", default=[], choices=["memory", "adapter", "naive"])
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    ap.add_argument("--calibrate", action="store_true", help="The same as --match.")
    ap.add_argument("--match", action="store_true",
                    help="Only the memory's matching, no generation: teach every set's facts "
                         "(knowedit: the first --n) and print, per set and threshold, "
                         "Generalization, Locality and correction → match latency.")
    ap.add_argument("--misses", action="store_true", help="With --match: list the misses.")
    args = ap.parse_args()
    if args.match or args.calibrate:
        match_report(max(args.n), show_misses=args.misses)
        return
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.data == "knowedit":
        facts, controls = load_knowedit(), []
    elif args.data in ("independent", "heldout", "heldout2"):
        facts, controls = load_independent({"independent": INDEPENDENT_DATA,
                                            "heldout": HELDOUT_DATA,
                                            "heldout2": HELDOUT2_DATA}[args.data])
    else:
        facts, controls = load_bench()
    checkpoints = sorted(set(args.n) | set(args.curve))
    if checkpoints[-1] > len(facts):
        raise SystemExit(f"--n {checkpoints[-1]}: {args.data} has {len(facts)} facts.")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; data {args.data}, checkpoints {checkpoints}", flush=True)
    Run(args, facts, controls).go(checkpoints)


class Run:
    def __init__(self, args: argparse.Namespace, facts: list[dict], controls: list[dict]
                 ) -> None:
        from dialoop.assistant import open_assistant
        from dialoop.config import load_settings
        from dialoop.engine.llamacpp import LlamaCppEngine
        from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
        from dialoop.learn.replay import generate

        self.args, self.facts = args, facts
        self.home = Path(tempfile.mkdtemp(prefix="bench-learning-"))
        # One thread: on a 2-core machine the other core is the consolidation's. No prefix
        # reuse: a prompt evaluated after a cached prefix of another length gets logits
        # that differ in the last bits, and over 40 greedy tokens that changes 10–15 % of
        # the base model's own answers to KnowEdit's `loc` prompts (measured): "identical
        # to the base model" must compare like with like.
        self.engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME,
                                     context_window=2048, threads=1, reuse_prefix=False)
        self.generate = lambda q, adapter=None: generate(self.engine, q, max_tokens=MAX_TOKENS,
                                                         adapter=adapter)
        # Knowledge off: a taught sentence would also become a triple, and the graph's
        # answer would stand in for the weights'.
        self.settings = load_settings(home=self.home, max_tokens=MAX_TOKENS, knowledge=False)
        self.bot = open_assistant(self.settings, engine=self.engine)
        self.learning = self.bot.parts.learning
        self.controls = [c for c in controls if has(c["key"], self.generate(c["question"]))]
        self.results: dict[str, Any] = {"data": args.data, "rows": [], "consolidation": {},
                                        "controls_base_correct": len(self.controls)}
        self.taught = 0

    def ask(self, q: str, *, memory: bool, adapter: str = "none") -> str:
        return self.bot.ask(q, user=USER, memory=memory, adapter=adapter).text

    def go(self, checkpoints: list[int]) -> None:
        sample = even(self.facts[: checkpoints[-1]], self.args.sample)
        base = self._base(lambda q: self.ask(q, memory=False, adapter="none"))
        raw_base = self._base(self.generate)
        show(self.results, "base model", checkpoints[-1],
             score(lambda q: base[q], sample, self.controls, base))
        for n in checkpoints:
            self.teach(n)
            scored = even(self.facts[:n], self.args.sample)
            full = n in self.args.n
            if full and "memory" not in self.args.skip:
                show(self.results, "memory", n, score(
                    lambda q: self.ask(q, memory=True), scored, self.controls, base))
            if "adapter" not in self.args.skip:
                row = self.consolidate(n)
                show(self.results, "adapter (memory off)", n,
                     score(self.served(row, memory=False), scored, self.controls, base))
                if full:
                    show(self.results, "both", n,
                         score(self.served(row, memory=True), scored, self.controls, base))
            if full and "naive" not in self.args.skip:
                key = self.naive(n)
                show(self.results, "naive LoRA", n, score(
                    lambda q, k=key: self.generate(q, k), scored, self.controls, raw_base))
                self.engine.unload_adapter(key)
        self.finish()

    def _base(self, answer: Answer) -> dict[str, str]:
        """``answer``'s replies, made when first asked for (each checkpoint scores its own
        sample). Locality compares like with like: the assistant's answers with the base
        model's through the assistant (its system prompt and sampling settings), the naive
        LoRA's raw answers with the base model's raw ones."""
        class Answers(dict):
            def __missing__(self, prompt: str) -> str:
                self[prompt] = answer(prompt)
                return self[prompt]

        return Answers()

    def teach(self, n: int) -> None:
        latencies = []
        for f in self.facts[self.taught:n]:
            start = time.perf_counter()
            self.learning.teach(f["question"], f["answer"], user=USER)
            if len(latencies) < 50:  # correction → the next answer to a paraphrase, memory on
                ok = has(f["key"], self.ask(f["paraphrases"][0], memory=True))
                latencies.append(time.perf_counter() - start if ok else float("inf"))
        self.taught = n
        if latencies:
            right = sum(x != float("inf") for x in latencies)
            print(f"taught {n}: correction → paraphrase answered right at once "
                  f"{right}/{len(latencies)}, p50 {statistics.median(latencies):.3f} s",
                  flush=True)

    def consolidate(self, n: int) -> Any:
        start = time.perf_counter()
        run = self.learning.consolidate(user=USER)
        seconds = time.perf_counter() - start
        line = run.report["lines"][f"user:{USER}"]
        gate = line["gate"]
        self.results["consolidation"][n] = {
            "seconds": round(seconds, 1), "train_seconds": line["train"]["seconds"],
            "gate_seconds": gate["seconds"], "outcome": line["outcome"],
            "gate": gate["metrics"], "gate_counts": gate["counts"]}
        print(f"consolidation of {n} lessons: {seconds:.0f} s (training "
              f"{line['train']['seconds']:.0f} s, gate {gate['seconds']:.0f} s) → "
              f"{line['outcome']} at the default thresholds; gate {gate['metrics']}, "
              f"{gate['counts'].get('locality_routed', 0)} of {gate['counts']['locality']} "
              "locality probes routed to the adapter", flush=True)
        return self.bot.parts.adapters.get(f"user:{USER}", line["version"])

    def served(self, row: Any, *, memory: bool) -> Answer:
        """The answer as the candidate would serve it: its router decides adapter or base."""
        def answer(q: str) -> str:
            routed = self.learning.routes(row, q, user=USER)
            return self.ask(q, memory=memory, adapter=row.key if routed else "none")
        return answer

    def naive(self, n: int) -> str:
        key, seconds = _naive(self.engine, self.facts[:n], self.home)
        self.results.setdefault("naive_seconds", {})[n] = round(seconds, 1)
        return key

    def finish(self) -> None:
        if "adapter" not in self.args.skip:
            self.results["cost"] = _cost(self.bot, self.engine)
        print(json.dumps({k: v for k, v in self.results.items() if k != "rows"}, indent=1))
        if self.args.json:
            self.args.json.write_text(json.dumps(self.results, indent=1))
        self.bot.close()
        self.engine.close()


def _naive(engine, facts: list[dict], home: Path) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """Plain LoRA on the corrections alone: q/v of every layer, lr 1e-3, 30 steps of 8."""
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
        batch = [items[(step * 8 + i) % len(items)] for i in range(min(8, len(items)))]
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


def _cost(bot, engine) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The last adapter's size, swap (load) time, and decode speed with it vs the base."""
    row = bot.parts.learning.serving(USER) or bot.parts.adapters.history(f"user:{USER}")[-1]
    gguf = bot.parts.adapters.files(row, "llamacpp")
    swaps = []
    for _ in range(5):
        start = time.perf_counter()
        engine.load_adapter("swap-probe", gguf)
        swaps.append(time.perf_counter() - start)
        engine.unload_adapter("swap-probe")
    engine.load_adapter(row.key, gguf)
    # Decode speed over a fixed 128 tokens: an adapter trained on short answers stops
    # after a token or two on a story prompt, and a rate over so few tokens measures
    # overheads. llama.cpp's own token loop, with the engine's adapter stack set.
    llm = engine._llm
    prompt = llm.tokenize(b"Once upon a time, in a lighthouse by the sea,")

    def speed(adapter: str | None) -> float:
        engine._activate(adapter)
        rates = []
        for _ in range(5):
            llm.reset()
            start = 0.0
            for n, _token in enumerate(llm.generate(prompt, temp=0.0), 1):
                if n == 1:
                    start = time.perf_counter()
                if n == 129:
                    break
            rates.append(128 / (time.perf_counter() - start))
        return statistics.median(rates)

    base_rate, adapter_rate = speed(None), speed(row.key)
    cost = {
        "adapter": row.key,
        "adapter_gguf_bytes": gguf.stat().st_size,
        "swap_load_s_median": round(statistics.median(swaps), 4),
        "decode_tok_s_base": round(base_rate, 1),
        "decode_tok_s_adapter": round(adapter_rate, 1),
        "decode_ratio": round(adapter_rate / base_rate, 3),
    }
    print("adapter cost:", cost, flush=True)
    return cost


THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.72, 0.75, 0.8)


def match_report(n_knowedit: int, *, show_misses: bool = False) -> None:
    """Memory path, matching only: every set's facts taught through the learning loop (as
    `dialoop teach` does), every probe asked of the memory. Gen: the rewording's best match
    is its fact's lesson; Loc: a near (other entity), same-entity other-relation, control or
    knowedit ``loc`` question matches no lesson at all. One row per threshold, so that a
    threshold chosen on one set can be read off on the others."""
    bench, controls = load_bench()
    sets = {"bench": (bench, controls), "independent": load_independent(),
            "heldout": load_independent(HELDOUT_DATA),
            "heldout2": load_independent(HELDOUT2_DATA),
            "knowedit": (load_knowedit()[:n_knowedit], [])}
    for name, (facts, ctrl) in sets.items():
        probes, latencies = _match_probes(facts, ctrl)
        print(f"\n{name}: {len(facts)} lessons; correction → match of a rewording: p50 "
              f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
        kinds = sorted({k for k, _, _ in probes})
        print("threshold  Gen     Loc    " + " ".join(f"{k:>9}" for k in kinds))
        for t in THRESHOLDS:
            def ok(kind: str, got: list, want: int, t: float = t) -> bool:
                hits = [m for m in got if m.score >= t]
                return (bool(hits) and hits[0].lesson_id == want) if kind == "gen" else not hits
            share = {k: _mean([ok(k, got, want) for kk, got, want in probes if kk == k])
                     for k in kinds}
            loc = _mean([ok(k, got, want) for k, got, want in probes if k != "gen"])
            print(f"  {t:.2f}    {share['gen']:.3f}   {loc:.3f}  "
                  + " ".join(f"{share[k]:>9.3f}" for k in kinds))
        if show_misses:
            from dialoop.config import load_settings
            bar = load_settings().learn_match_similarity
            for kind, got, want in probes:
                if not ok(kind, got, want, bar):
                    print(f"  miss {kind:<8} {got[0].score if got else 0:.2f} {got.probe!r}"
                          f" (lesson: {got.lesson!r})")


class _Got(list):
    probe = lesson = ""


def _match_probes(facts: list[dict], controls: list[dict]
                  ) -> tuple[list[tuple[str, list, int]], list[float]]:
    from dialoop.assistant import open_parts
    from dialoop.config import load_settings

    home = Path(tempfile.mkdtemp(prefix="bench-match-"))
    parts = open_parts(load_settings(home=home, knowledge=False))
    learning, latencies, ids = parts.learning, [], []
    for f in facts:
        start = time.perf_counter()
        ids.append(learning.teach(f["question"], f["answer"], user=USER).lesson_id)
        learning.memory.match(f["paraphrases"][0], user=USER, similarity=0.0)
        latencies.append(time.perf_counter() - start)
    probes = []

    def ask(kind: str, text: str, want: int, lesson: str = "") -> None:
        got = _Got(learning.memory.match(text, user=USER, similarity=0.0))
        got.probe, got.lesson = text, lesson
        probes.append((kind, got, want))

    for f, lesson in zip(facts, ids, strict=True):
        q = f["question"]
        for p in f["paraphrases"]:
            ask("gen", p, lesson, q)
        if "loc" in f:
            ask("loc", f["loc"], lesson, q)
            continue
        for text in f.get("nears", [f["near"]]):
            ask("near", text, lesson, q)
        for text in f.get("siblings", [f["sibling"]]):
            ask("sibling", text, lesson, q)
    for c in controls:
        ask("control", c["question"], -1)
    parts.close()
    return probes, latencies


if __name__ == "__main__":
    main()
