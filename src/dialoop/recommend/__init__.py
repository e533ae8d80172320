"""Personalised recommendation: a catalogue, each user's interactions, ranked lists with reasons.

    from dialoop.recommend import Recommender, read_catalogue, read_interactions

    rec = Recommender(db, default_embedder(), settings.home)
    rec.import_items(read_catalogue(Path("books.jsonl")))
    rec.record("ann", "b12", "rating", 5)
    for r in rec.recommend("ann", k=5):
        print(r.title, "-", r.reason)
    rec.train()          # the collaborative part, from everyone's interactions

Parts: the scoring model (:mod:`.model`: item text by meaning, implicit's ALS, the
blend chosen on held-out events), files (:mod:`.read`), the recommender with its tables
(:mod:`.recommender`, :mod:`dialoop.store.recommend`), and the chat side
(:mod:`.chat`: "what should I watch next?").
"""

from __future__ import annotations

from dialoop.recommend.model import EVENT_KINDS, HybridModel, event_weight
from dialoop.recommend.read import EventIn, Item, read_catalogue, read_interactions
from dialoop.recommend.recommender import Recommendation, Recommender

__all__ = [
    "EVENT_KINDS",
    "EventIn",
    "HybridModel",
    "Item",
    "Recommendation",
    "Recommender",
    "event_weight",
    "read_catalogue",
    "read_interactions",
]
