"""The scoring model: weights, ranking, the collaborative part and its online fold-in."""

from __future__ import annotations

import numpy as np
import pytest

from dialoop.recommend.model import HybridModel, event_weight, ndcg_at, rank_top
from tests.fakes import HashEmbedder
from tests.recommend.data import catalogue, interactions


def _events() -> tuple[np.ndarray, list[tuple[int, int, float]], dict[str, int]]:
    items = catalogue()
    index = {it.id: k for k, it in enumerate(items)}
    content = HashEmbedder().embed([it.document() for it in items])
    users: dict[str, int] = {}
    events = [(users.setdefault(e.user, len(users)), index[e.item], event_weight(e.kind, e.value))
              for e in interactions()]
    return content, events, index


def test_event_weights() -> None:
    assert event_weight("rating", 5) == 1.0 and event_weight("rating", 1) == -1.0
    assert event_weight("rating", 3) == 0.0 and event_weight("purchase") > event_weight("view")
    assert event_weight("dislike") < 0
    with pytest.raises(ValueError):
        event_weight("rating", 7)
    with pytest.raises(ValueError):
        event_weight("rating", None)


def test_rank_top_and_ndcg() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert rank_top(scores, 2) == [1, 3]
    assert rank_top(scores, 3, exclude={1}) == [3, 2, 0]
    assert rank_top(scores, 10, exclude={0, 1, 2, 3}) == []
    assert ndcg_at([1, 3], {1}, 10) == 1.0
    assert ndcg_at([3, 1], {1}, 10) == pytest.approx(1 / np.log2(3))
    assert ndcg_at([0, 2], {1}, 10) == 0.0


def test_the_collaborative_part_learns_the_two_tastes() -> None:
    content, events, index = _events()
    model = HybridModel.fit(content, events, threads=1)
    assert model.item_factors is not None and model.item_factors.shape == (40, model.item_factors.shape[1])
    # The hash embedder's content is noise, so the validation split should give the
    # collaborative part the larger share.
    assert model.blend >= 0.5
    history = [(index["s1"], 1.0), (index["s2"], 1.0)]
    top = rank_top(model.scores(history), 8, {i for i, _ in history})
    assert sum(1 for i in top if i < 20) >= 7  # space books (indices 0-19) for a space reader


def test_folding_in_a_new_event_changes_the_list_at_once() -> None:
    content, events, index = _events()
    model = HybridModel.fit(content, events, threads=1)
    cooking = [(index["c3"], 1.0)]
    before = rank_top(model.scores(cooking), 5, {index["c3"]})
    after_history = cooking + [(index["s4"], 1.0), (index["s5"], 1.0), (index["s6"], 1.0)]
    after = rank_top(model.scores(after_history), 5, {i for i, _ in after_history})
    assert all(i >= 20 for i in before)
    assert sum(1 for i in after if i < 20) >= 2


def test_too_few_events_means_content_and_popularity_only() -> None:
    content, events, _ = _events()
    model = HybridModel.fit(content, events[:50], threads=1)
    assert model.item_factors is None and model.blend == 0.0
    assert model.scores([]).shape == (40,)


def test_save_and_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    content, events, _ = _events()
    model = HybridModel.fit(content, events, threads=1)
    model.save(tmp_path / "m.npz")
    again = HybridModel.load(tmp_path / "m.npz")
    history = [(3, 1.0), (7, 0.5)]
    assert np.allclose(again.scores(history), model.scores(history), atol=1e-5)
    assert (again.blend, again.prior, again.alpha) == (model.blend, model.prior, model.alpha)
