"""The scoring model: item text by meaning, a collaborative signal, and how much of each.

A user is their history, a list of ``(item index, weight)``: a 5-star rating weighs
+1, a 1-star one −1, a purchase +1.5, a view +0.25 (:func:`event_weight`). Three signals
score every item for a history, each z-normalised over the catalogue:

- **content**: cosine between the item's text embedding (the bundled all-MiniLM-L6-v2)
  and the history's weighted mean embedding (dislikes pull away). Works from the first
  item the user touches, and for items nobody has touched yet.
- **collaborative**: the library `implicit`'s alternating least squares (Hu, Koren and
  Volinsky's implicit-feedback matrix factorisation), trained on every event with a
  positive weight. A user's factors are *folded in* from their current history at
  request time (``recalculate_user``), so each new interaction changes their ranking at
  once without retraining the item factors.
- **popularity**: log count of positive events per item; what a user with no history
  gets.

``blend`` (the collaborative share) and ``prior`` (the popularity weight) are chosen at
training time on the last tenth of the training events, never set by hand; with too
few events there is no collaborative part and the blend is content (plus popularity).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

__all__ = ["EVENT_KINDS", "History", "HybridModel", "event_weight", "ndcg_at", "rank_top"]

log = logging.getLogger(__name__)

# What each kind of interaction says about interest. A rating carries its own value.
EVENT_KINDS: dict[str, float] = {
    "view": 0.25, "click": 0.5, "like": 1.0, "said": 1.0, "purchase": 1.5,
    "dislike": -1.0, "skip": -0.25, "rating": 0.0,
}
MIN_EVENTS = 200  # positive events before a collaborative model is trained
MIN_USERS = 10
FACTORS = 48
# (factors, regularization, alpha) tried by :meth:`HybridModel.fit`: small and large
# models, light and strong confidence scaling; the validation split picks one.
GRID = ((32, 0.1, 2.0), (48, 0.05, 20.0), (64, 1.0, 10.0), (32, 0.1, 10.0))
History = Sequence[tuple[int, float]]  # (item index, weight), oldest first


def event_weight(kind: str, value: float | None = None) -> float:
    """How much an event of ``kind`` says the user likes the item, in [-1.5, 1.5].
    A rating (1 to 5 stars) weighs ``(value - 3) / 2``: 5 → +1, 3 → 0, 1 → −1."""
    if kind == "rating":
        if value is None or not 0 <= value <= 5:
            raise ValueError("A rating event needs a value from 0 to 5 stars.")
        return (float(value) - 3.0) / 2.0
    return EVENT_KINDS[kind]


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - float(x.mean())) / sd if sd > 1e-9 else np.zeros_like(x)


def rank_top(scores: np.ndarray, k: int, exclude: set[int] | None = None) -> list[int]:
    """The indices of the ``k`` highest ``scores``, best first, skipping ``exclude``."""
    s = scores.astype(np.float64, copy=True)
    if exclude:
        s[list(exclude)] = -np.inf
    k = min(k, int(np.isfinite(s).sum()))
    if k <= 0:
        return []
    top = np.argpartition(-s, k - 1)[:k]
    return [int(i) for i in top[np.argsort(-s[top], kind="stable")]]


def ndcg_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Binary-relevance NDCG@k of one ranked list."""
    dcg = sum(1.0 / math.log2(r + 2) for r, i in enumerate(ranked[:k]) if i in relevant)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


@dataclass
class HybridModel:
    """Scores items for a history. ``content`` is (N, D), rows L2-normalised."""

    content: np.ndarray
    popularity: np.ndarray  # (N,) log(1 + positive events)
    item_factors: np.ndarray | None = None  # (N, F) from implicit's ALS; None: content only
    regularization: float = 0.05
    alpha: float = 20.0  # confidence per unit of weight (implicit's ``alpha``)
    blend: float = 0.0  # the collaborative share of the score
    prior: float = 0.1  # the popularity weight
    trained_on: int = 0  # positive events the factors were learned from
    validation: float = 0.0  # NDCG@10 on the last tenth of the training events

    def __post_init__(self) -> None:
        self._als: Any = None
        self._pop_z = _z(self.popularity)

    @property
    def n_items(self) -> int:
        return int(self.content.shape[0])

    # -- scoring ----------------------------------------------------------------------------

    def signals(self, history: History) -> dict[str, np.ndarray]:
        """The z-normalised content and collaborative scores of every item (each (N,);
        an empty history gives zeros)."""
        n = self.n_items
        out = {"content": np.zeros(n, np.float32), "collaborative": np.zeros(n, np.float32)}
        if not history:
            return out
        idx = np.fromiter((i for i, _ in history), np.int64, len(history))
        w = np.fromiter((w for _, w in history), np.float32, len(history))
        profile = w @ self.content[idx]  # (D,)
        norm = float(np.linalg.norm(profile))
        if norm > 1e-9:
            out["content"] = _z(self.content @ (profile / norm))
        if self.item_factors is not None and (w > 0).any():
            out["collaborative"] = _z(self.item_factors @ self.fold_in(history))
        return out

    def scores(self, history: History) -> np.ndarray:
        """The blended score of every item for ``history`` (N,)."""
        s = self.signals(history)
        if not history:
            return self._pop_z.copy()
        a = self.blend if self.item_factors is not None else 0.0
        return (1 - a) * s["content"] + a * s["collaborative"] + self.prior * self._pop_z

    def fold_in(self, history: History) -> np.ndarray:
        """The user's collaborative factors (F,) from their positive events, computed from
        the fixed item factors: the online update of the collaborative part."""
        from implicit.cpu.als import AlternatingLeastSquares

        if self._als is None:
            assert self.item_factors is not None
            with threadpool_limits(1, "blas"):  # implicit's own threads do the work
                als = AlternatingLeastSquares(factors=self.item_factors.shape[1],
                                              regularization=self.regularization,
                                              alpha=self.alpha, num_threads=1)
            als.item_factors = self.item_factors
            self._als = als
        weights: dict[int, float] = {}
        for i, w in history:
            if w > 0:
                weights[i] = weights.get(i, 0.0) + w
        cols = np.array(sorted(weights), np.int32)
        row = sp.csr_matrix((np.array([weights[c] for c in cols], np.float32),
                             (np.zeros(len(cols), np.int32), cols)), shape=(1, self.n_items))
        return np.asarray(self._als.recalculate_user(0, row))

    # -- why ------------------------------------------------------------------------------

    def similar_in(self, item: int, history: History) -> tuple[int, float] | None:
        """The liked item of ``history`` most like ``item`` (by text, and by the factors
        when there are some), with that similarity; None when nothing in it was liked."""
        liked = sorted({i for i, w in history if w > 0 and i != item})
        if not liked:
            return None
        sims = self.content[liked] @ self.content[item]  # (L,)
        if self.item_factors is not None and self.blend > 0:
            f = self.item_factors
            norms = np.linalg.norm(f[liked], axis=1) * (np.linalg.norm(f[item]) or 1.0)
            cf = (f[liked] @ f[item]) / np.where(norms > 0, norms, 1.0)
            sims = (1 - self.blend) * sims + self.blend * cf
        best = int(np.argmax(sims))
        return liked[best], float(sims[best])

    # -- training -------------------------------------------------------------------------

    @classmethod
    def fit(cls, content: np.ndarray, events: Sequence[tuple[int, int, float]], *,
            seed: int = 0, threads: int = 0, iterations: int = 15) -> HybridModel:
        """Train on ``events`` = ``(user index, item index, weight)``, oldest first.

        Everything is chosen on the last tenth of the events, ranked from the first nine
        tenths (NDCG@10 of each held-out user's liked items): the factorisation's size,
        regularisation and confidence scale among :data:`GRID`, then ``blend`` and
        ``prior``. The chosen factorisation is then learned again from every event."""
        cut = int(len(events) * 0.9)
        early, held = events[:cut], events[cut:]
        best: tuple[float, HybridModel] | None = None
        for factors, reg, alpha in GRID:
            m = cls._fit_parts(content, early, seed, threads, iterations, factors, reg, alpha)
            blends = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0) if m.item_factors is not None else (0.0,)
            (m.blend, m.prior), score = _choose_blend(m, early, held, blends=blends)
            if best is None or score > best[0] + 1e-9:
                best = score, m
            if m.item_factors is None:
                break  # too few events: no factorisation to choose
        assert best is not None
        chosen = best[1]
        f = chosen.item_factors.shape[1] if chosen.item_factors is not None else FACTORS
        full = cls._fit_parts(content, events, seed, threads, iterations, f,
                              chosen.regularization, chosen.alpha)
        full.blend = chosen.blend if full.item_factors is not None else 0.0
        full.prior = chosen.prior
        full.validation = best[0]
        log.info("recommend: trained on %d positive events of %d items; %d factors, "
                 "regularization %g, alpha %g; blend %.2f, prior %.2f", full.trained_on,
                 content.shape[0], f, full.regularization, full.alpha, full.blend, full.prior)
        return full

    @classmethod
    def _fit_parts(cls, content: np.ndarray, events: Sequence[tuple[int, int, float]],
                   seed: int, threads: int, iterations: int, factors: int = FACTORS,
                   regularization: float = 0.05, alpha: float = 20.0) -> HybridModel:
        n = content.shape[0]
        positive = [(u, i, w) for u, i, w in events if w > 0]
        counts = np.bincount([i for _, i, _ in positive], minlength=n).astype(np.float32)
        model = cls(content=content, popularity=np.log1p(counts), trained_on=len(positive),
                    regularization=regularization, alpha=alpha)
        users = {u for u, _, _ in positive}
        if len(positive) < MIN_EVENTS or len(users) < MIN_USERS:
            return model
        from implicit.cpu.als import AlternatingLeastSquares

        ids = {u: k for k, u in enumerate(sorted(users))}
        rows = np.array([ids[u] for u, _, _ in positive], np.int32)
        cols = np.array([i for _, i, _ in positive], np.int32)
        vals = np.array([w for _, _, w in positive], np.float32)
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(ids), n))
        matrix.sum_duplicates()
        with threadpool_limits(1, "blas"):  # implicit's own threads do the work
            als = AlternatingLeastSquares(factors=factors, regularization=regularization,
                                          alpha=alpha, iterations=iterations, random_state=seed,
                                          num_threads=threads)
            als.fit(matrix, show_progress=False)
        model.item_factors = np.asarray(als.item_factors, np.float32)
        return model

    # -- files ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"content": self.content, "popularity": self.popularity,
                                  "meta": np.array([self.blend, self.prior, self.regularization,
                                                    self.alpha, float(self.trained_on),
                                                    self.validation])}
        if self.item_factors is not None:
            arrays["item_factors"] = self.item_factors
        with path.open("wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> HybridModel:
        with np.load(path) as z:
            blend, prior, reg, alpha, trained, validation = (float(x) for x in z["meta"])
            return cls(content=z["content"], popularity=z["popularity"],
                       item_factors=z.get("item_factors"),
                       regularization=reg, alpha=alpha, blend=blend, prior=prior,
                       trained_on=int(trained), validation=validation)


def _choose_blend(model: HybridModel, train: Sequence[tuple[int, int, float]],
                  held: Sequence[tuple[int, int, float]], *,
                  blends: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
                  priors: Sequence[float] = (0.0, 0.1, 0.3),
                  ) -> tuple[tuple[float, float], float]:
    """The (blend, prior) with the best mean NDCG@10 on ``held``, each held-out user
    ranked from their ``train`` history (users with none are skipped), and that NDCG."""
    histories: dict[int, list[tuple[int, float]]] = {}
    for u, i, w in train:
        histories.setdefault(u, []).append((i, w))
    wanted: dict[int, set[int]] = {}
    for u, i, w in held:
        if w > 0 and u in histories:
            wanted.setdefault(u, set()).add(i)
    users = sorted(wanted)[:300]  # enough to choose among a few settings
    if not users:
        return ((0.5 if model.item_factors is not None else 0.0), 0.1), 0.0
    signals = {u: model.signals(histories[u]) for u in users}
    pop = model._pop_z
    best, best_score = (blends[0], priors[0]), -1.0
    for a in blends:
        for p in priors:
            total = 0.0
            for u in users:
                s = (1 - a) * signals[u]["content"] + a * signals[u]["collaborative"] + p * pop
                seen = {i for i, _ in histories[u]}
                total += ndcg_at(rank_top(s, 10, seen), wanted[u], 10)
            if total > best_score + 1e-9:
                best, best_score = (a, p), total
    return best, best_score / len(users)
