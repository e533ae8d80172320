"""The recommender: a catalogue, each user's interactions, ranked lists with reasons.

Per user, like lessons: a user's events are read back for them alone; their list and
its reasons ("because you liked …") come from their own history only. The catalogue is
shared (an admin imports it), and so is what training learns from everyone's events:
the collaborative item factors and the popularity counts, aggregates from which no one
user's history can be read back.

Online: every event is stored before it is acknowledged and the next list is computed
from the history as it is then (the content profile and the collaborative fold-in of
:class:`~dialoop.recommend.model.HybridModel`), so a rating changes the next
recommendation at once; ``train`` relearns the item factors from everyone's events in
the background of that.

Bounded exploration: at most ``round(k × explore)`` slots of a list (one in ten by
default) hold an item from just below the top, drawn at random (seeded by the user and
their history, so the same state gives the same list), marked as exploring. Items
shown without any reaction sink a little each time (at most three times).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.recommend.model import EVENT_KINDS, HybridModel, event_weight, rank_top
from dialoop.recommend.read import EventIn, Item
from dialoop.store import Database
from dialoop.store.models import utcnow
from dialoop.store.recommend import RecEvent, RecItem, RecModel

__all__ = ["Recommendation", "Recommender"]

log = logging.getLogger(__name__)

SHOWN = "shown"  # an impression: stored, weighs nothing, lowers the item a little
SHOWN_PENALTY = 0.3  # z-score units per ignored impression
MAX_PENALISED = 3
EXPLORE_FROM = 40  # exploring items come from the next this many below the top k
MAX_K = 100


@dataclass(frozen=True)
class Recommendation:
    key: str
    title: str
    score: float
    reason: str
    because: str | None = None  # the key of the liked item it resembles
    path: tuple[str, ...] = ()  # liked item, relation, value, relation, item
    exploring: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.key, "title": self.title, "score": round(self.score, 4),
                "reason": self.reason, "because": self.because, "path": list(self.path),
                "exploring": self.exploring}


@dataclass
class _Catalogue:
    ids: list[int]  # rec_items.id, in matrix order
    keys: list[str]
    titles: list[str]
    attributes: list[dict[str, list[str]]]
    content: np.ndarray  # (N, D)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # items per value

    def __post_init__(self) -> None:
        for attrs in self.attributes:
            self.counts.update((name, v) for name, values in attrs.items() for v in values)

    def index(self) -> dict[int, int]:
        return {row: k for k, row in enumerate(self.ids)}

    def shared(self, i: int, j: int) -> tuple[str, str] | None:
        """The rarest attribute value items ``i`` and ``j`` share (the most telling one:
        the same director says more than the same genre), if they share any."""
        both = [(name, v) for name, values in self.attributes[i].items()
                for v in values if v in self.attributes[j].get(name, ())]
        return min(both, key=lambda nv: (self.counts[nv], nv)) if both else None


class Recommender:
    """Import, record, recommend, train. Thread-safe."""

    def __init__(self, db: Database, embedder: Embedder, home: Path, *,
                 explore: float = 0.1) -> None:
        if not 0 <= explore <= 0.5:
            raise InvalidInputError("explore is a share of the list from 0 to 0.5.")
        self.db = db
        self.embedder = embedder
        self.folder = home / "recommend"
        self.explore = explore
        self._lock = threading.Lock()
        self._catalogue: _Catalogue | None = None
        self._model: tuple[int, HybridModel] | None = None  # (version, aligned model)

    # -- the catalogue --------------------------------------------------------------------

    def import_items(self, items: Iterable[Item]) -> dict[str, int]:
        """Add or update catalogue items (by ``id``); returns counts added and updated."""
        items = list(items)
        if not items:
            raise InvalidInputError("No items to import.")
        if len({it.id for it in items}) != len(items):
            raise InvalidInputError("An item id is repeated in the import.")
        vectors = self.embedder.embed([it.document() for it in items]).astype(np.float32)
        added = updated = 0
        with self.db.write() as s:
            existing = {r.key: r for r in s.scalars(
                sa.select(RecItem).where(RecItem.key.in_([it.id for it in items])))}
            for it, vec in zip(items, vectors, strict=True):
                row = existing.get(it.id)
                if row is None:
                    s.add(RecItem(key=it.id, title=it.title, text=it.text,
                                  attributes=it.attributes, vector=vec.tobytes()))
                    added += 1
                else:
                    row.title, row.text, row.attributes = it.title, it.text, it.attributes
                    row.vector = vec.tobytes()
                    updated += 1
        with self._lock:
            self._catalogue = None
            self._model = None
        log.info("recommend: %d items added, %d updated", added, updated)
        return {"added": added, "updated": updated}

    def items(self, *, limit: int = 50, search: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(RecItem).order_by(RecItem.id).limit(limit)
        if search:
            q = q.where(sa.func.lower(RecItem.title).like(f"%{search.lower()}%"))
        with self.db.read() as s:
            return [{"item": r.key, "title": r.title, "text": r.text,
                     "attributes": r.attributes} for r in s.scalars(q)]

    def find_item(self, title: str) -> str | None:
        """The key of the item whose title is ``title`` (any case), if one is."""
        with self.db.read() as s:
            return s.scalar(sa.select(RecItem.key).where(
                sa.func.lower(RecItem.title) == title.strip().lower()).limit(1))

    def titles(self) -> dict[str, str]:
        """Lowercase title → key, for finding items named in a message. Titles of fewer than
        four letters are left out ("It", "Up" would match ordinary words)."""
        cat = self._load_catalogue()
        return {t.lower(): k for t, k in zip(cat.titles, cat.keys, strict=True)
                if len(t) >= 4}

    def size(self) -> int:
        with self.db.read() as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(RecItem)) or 0)

    # -- events ---------------------------------------------------------------------------

    def record(self, user: str, item: str, kind: str, value: float | None = None,
               time: datetime | None = None) -> dict[str, Any]:
        """Store one interaction of ``user``; it shapes their next list at once."""
        return self.record_many([EventIn(user, item, kind, value, time)])[0]

    def record_many(self, events: Iterable[EventIn]) -> list[dict[str, Any]]:
        """Store interactions (all or none: a bad one stores nothing)."""
        events = list(events)
        rows = []
        with self.db.write() as s:
            keys = {e.item for e in events}
            ids = dict(s.execute(sa.select(RecItem.key, RecItem.id).where(
                RecItem.key.in_(keys))).all()) if keys else {}
            for n, e in enumerate(events, 1):
                if not e.user:
                    raise InvalidInputError(f"Event {n}: no user.")
                if e.kind not in EVENT_KINDS and e.kind != SHOWN:
                    raise InvalidInputError(f"Event {n}: unknown kind {e.kind!r}; one of "
                                            f"{', '.join(EVENT_KINDS)}.")
                if e.item not in ids:
                    raise NotFoundError(f"Event {n}: the catalogue has no item {e.item!r}.")
                try:
                    weight = 0.0 if e.kind == SHOWN else event_weight(e.kind, e.value)
                except ValueError as exc:
                    raise InvalidInputError(f"Event {n}: {exc}") from None
                rows.append(RecEvent(user_id=e.user, item_id=ids[e.item], kind=e.kind,
                                     value=e.value, weight=weight, time=e.time or utcnow()))
            s.add_all(rows)
            s.flush()
            return [{"id": r.id, "item": e.item, "kind": r.kind, "value": r.value,
                     "weight": r.weight, "time": r.time.isoformat()}
                    for r, e in zip(rows, events, strict=True)]

    def history(self, user: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """``user``'s interactions, newest first (impressions left out)."""
        with self.db.read() as s:
            rows = s.execute(
                sa.select(RecEvent, RecItem.key, RecItem.title)
                .join(RecItem, RecItem.id == RecEvent.item_id)
                .where(RecEvent.user_id == user, RecEvent.kind != SHOWN)
                .order_by(RecEvent.time.desc(), RecEvent.id.desc()).limit(limit)).all()
        return [{"id": e.id, "item": key, "title": title, "kind": e.kind, "value": e.value,
                 "time": e.time.isoformat()} for e, key, title in rows]

    def forget(self, user: str, item: str | None = None) -> int:
        """Delete ``user``'s interactions (with one item, or all); how many were deleted."""
        with self.db.write() as s:
            q = sa.delete(RecEvent).where(RecEvent.user_id == user)
            if item is not None:
                row = s.scalar(sa.select(RecItem.id).where(RecItem.key == item))
                if row is None:
                    raise NotFoundError(f"The catalogue has no item {item!r}.")
                q = q.where(RecEvent.item_id == row)
            return int(s.execute(q).rowcount or 0)  # type: ignore[attr-defined]

    # -- recommending ---------------------------------------------------------------------

    def recommend(self, user: str, *, k: int = 10, explore: float | None = None,
                  record_shown: bool = True) -> list[Recommendation]:
        """``user``'s top ``k`` items they have not interacted with, each with its reason.
        ``record_shown`` stores the list as impressions (what was shown and ignored sinks)."""
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k is from 1 to {MAX_K}.")
        explore = self.explore if explore is None else explore
        if not 0 <= explore <= 0.5:
            raise InvalidInputError("explore is a share of the list from 0 to 0.5.")
        cat, model = self._current()
        if not cat.ids:
            return []
        where = cat.index()
        history: list[tuple[int, float]] = []
        seen: set[int] = set()
        shown: Counter[int] = Counter()
        with self.db.read() as s:
            for item_id, kind, weight in s.execute(
                    sa.select(RecEvent.item_id, RecEvent.kind, RecEvent.weight)
                    .where(RecEvent.user_id == user)
                    .order_by(RecEvent.time, RecEvent.id)):
                i = where.get(item_id)
                if i is None:
                    continue
                if kind == SHOWN:
                    shown[i] += 1
                else:
                    history.append((i, weight))
                    seen.add(i)
                    shown.pop(i, None)  # a reaction clears the item's ignored impressions
        scores = model.scores(history)
        for i, n in shown.items():
            scores[i] -= SHOWN_PENALTY * min(n, MAX_PENALISED)
        ranked = rank_top(scores, k + EXPLORE_FROM, seen)
        top, rest = ranked[:k], ranked[k:]
        slots = min(int(k * explore + 0.5), len(rest))
        exploring: list[int] = []
        if slots:
            seed = hashlib.sha256(f"{user}\0{len(history)}\0{sum(shown.values())}".encode())
            exploring = random.Random(seed.digest()).sample(rest, slots)
            top = top[: k - slots]
        out = [self._explain(cat, model, i, float(scores[i]), history) for i in top]
        out += [Recommendation(cat.keys[i], cat.titles[i], float(scores[i]),
                               "something a little different from your usual picks",
                               exploring=True) for i in exploring]
        if record_shown and out:
            self.record_many([EventIn(user, r.key, SHOWN) for r in out])
        return out

    def _explain(self, cat: _Catalogue, model: HybridModel, i: int, score: float,
                 history: list[tuple[int, float]]) -> Recommendation:
        like = model.similar_in(i, history)
        if like is None:
            reason = ("popular with other users" if model.popularity[i] > 0
                      else "matches what the catalogue is about")
            return Recommendation(cat.keys[i], cat.titles[i], score, reason)
        j, _ = like
        path: tuple[str, ...] = ()
        if (shared := cat.shared(i, j)) is not None:
            path = (cat.titles[j], shared[0], shared[1], shared[0], cat.titles[i])
        reason = f"because you liked {cat.titles[j]}"
        if path:
            reason += f" (both: {path[1]} {path[2]})"
        return Recommendation(cat.keys[i], cat.titles[i], score, reason, cat.keys[j], path)

    # -- training -------------------------------------------------------------------------

    def train(self, *, threads: int = 0) -> dict[str, Any]:
        """Learn the collaborative factors and the blend from every user's events and serve
        the new version (the last ones stay on disk: :meth:`use` goes back). The
        collaborative part counts only as much as it helps: its share of the score is the
        one that ranks the held-out last tenth of the events best, 0 when it does not help
        (:meth:`HybridModel.fit`). Returns the report."""
        cat = self._load_catalogue()
        where = cat.index()
        with self.db.read() as s:
            rows = s.execute(sa.select(RecEvent.user_id, RecEvent.item_id, RecEvent.weight)
                             .where(RecEvent.kind != SHOWN)
                             .order_by(RecEvent.time, RecEvent.id)).all()
        users: dict[str, int] = {}
        events = [(users.setdefault(u, len(users)), where[i], w) for u, i, w in rows
                  if i in where]
        if not events:
            raise InvalidInputError("No interactions to learn from: record some first.")
        model = HybridModel.fit(cat.content, events, threads=threads)
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.db.write() as s:
            version = int(s.scalar(sa.select(sa.func.max(RecModel.version))) or 0) + 1
            path = self.folder / f"model-v{version}.npz"
            model.save(path)
            np.save(self.folder / f"model-v{version}.keys.npy", np.array(cat.keys))
            report = {"version": version, "events": len(events), "users": len(users),
                      "items": len(cat.ids), "positive_events": model.trained_on,
                      "collaborative": model.item_factors is not None,
                      "factors": (int(model.item_factors.shape[1])
                                  if model.item_factors is not None else 0),
                      "blend": model.blend, "prior": model.prior,
                      "regularization": model.regularization, "alpha": model.alpha,
                      "validation_ndcg10": round(model.validation, 4)}
            for old in s.scalars(sa.select(RecModel).where(RecModel.status == "serving")):
                old.status = "retired"
            s.add(RecModel(version=version, status="serving", path=str(path), report=report))
        with self._lock:
            self._model = None
        return report

    def use(self, version: int) -> dict[str, Any]:
        """Serve model ``version`` again (a rollback); returns its report."""
        with self.db.write() as s:
            chosen = s.scalar(sa.select(RecModel).where(RecModel.version == version))
            if chosen is None or not Path(chosen.path).exists():
                raise NotFoundError(f"No recommendation model v{version}: "
                                    "`dialoop recommend models` lists them.")
            for old in s.scalars(sa.select(RecModel).where(RecModel.status == "serving")):
                old.status = "retired"
            chosen.status = "serving"
            report = dict(chosen.report)
        with self._lock:
            self._model = None
        return report

    def models(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [{"version": m.version, "status": m.status, "created_at":
                     m.created_at.isoformat(), **m.report}
                    for m in s.scalars(sa.select(RecModel).order_by(RecModel.version))]

    # -- state ----------------------------------------------------------------------------

    def _load_catalogue(self) -> _Catalogue:
        with self._lock:
            if self._catalogue is not None:
                return self._catalogue
        with self.db.read() as s:
            rows = s.execute(sa.select(RecItem.id, RecItem.key, RecItem.title,
                                       RecItem.attributes, RecItem.vector)
                             .order_by(RecItem.id)).all()
        if rows:
            content = np.stack([np.frombuffer(r.vector, np.float32) for r in rows])
        else:
            content = np.zeros((0, 1), np.float32)
        cat = _Catalogue([r.id for r in rows], [r.key for r in rows], [r.title for r in rows],
                         [r.attributes for r in rows], content)
        with self._lock:
            self._catalogue = cat
        return cat

    def _popularity(self, cat: _Catalogue) -> np.ndarray:
        """log(1 + positive events) per item, counted in the database."""
        where = cat.index()
        pop = np.zeros(len(cat.ids), np.float32)
        with self.db.read() as s:
            for item_id, count in s.execute(
                    sa.select(RecEvent.item_id, sa.func.count()).where(RecEvent.weight > 0)
                    .group_by(RecEvent.item_id)):
                if item_id in where:
                    pop[where[item_id]] = np.log1p(count)
        return pop

    def _current(self) -> tuple[_Catalogue, HybridModel]:
        """The catalogue and the serving model aligned to it (items added since training
        get no collaborative factors and no popularity)."""
        cat = self._load_catalogue()
        with self.db.read() as s:
            serving = s.scalar(sa.select(RecModel).where(RecModel.status == "serving"))
            version, path = (serving.version, serving.path) if serving else (0, None)
        with self._lock:
            if self._model is not None and self._model[0] == version:
                return cat, self._model[1]
        if path is None or not Path(path).exists():
            # Nothing trained yet: content, and popularity counted now (not cached: it
            # moves with every event until a model is trained).
            return cat, HybridModel(content=cat.content, popularity=self._popularity(cat))
        trained = HybridModel.load(Path(path))
        keys = np.load(Path(path).with_suffix("").with_suffix(".keys.npy")).tolist()
        at = {key: k for k, key in enumerate(keys)}
        rows = [at.get(key, -1) for key in cat.keys]
        known = np.array([r >= 0 for r in rows])
        take = np.array([max(r, 0) for r in rows])
        pop = np.where(known, trained.popularity[take], 0.0).astype(np.float32)
        factors = None
        if trained.item_factors is not None:
            factors = np.where(known[:, None], trained.item_factors[take], 0.0).astype(np.float32)
        model = dataclasses.replace(trained, content=cat.content, popularity=pop,
                                    item_factors=factors)
        with self._lock:
            self._model = (version, model)
        return cat, model
