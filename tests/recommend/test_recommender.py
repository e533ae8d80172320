"""The recommender on a real SQLite file: import, record, recommend with reasons, train,
bounded exploration, impressions, per-user isolation, bad input changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.config import Settings
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.recommend import EventIn, Item, Recommender, read_catalogue, read_interactions
from dialoop.store import open_database
from tests.fakes import HashEmbedder
from tests.recommend.data import catalogue, interactions, write_catalogue


@pytest.fixture
def rec(settings: Settings) -> Iterator[Recommender]:
    db = open_database(settings.resolved_database_url)
    r = Recommender(db, HashEmbedder(), settings.home)
    r.import_items(catalogue())
    yield r
    db.close()


def test_an_empty_history_gets_the_popular_items_and_says_so(rec: Recommender) -> None:
    rec.record_many(interactions())
    top = rec.recommend("newcomer", k=5, explore=0.0)
    assert len(top) == 5 and all(r.because is None for r in top)
    assert all(r.reason == "popular with other users" for r in top)


def test_reasons_name_only_the_users_own_liked_items(rec: Recommender) -> None:
    rec.record_many(interactions())
    rec.train(threads=1)
    rec.record("ann", "s1", "rating", 5)
    rec.record("ann", "s2", "like")
    found = rec.recommend("ann", k=6, explore=0.0)
    assert {r.because for r in found} <= {"s1", "s2"}
    assert sum(r.key.startswith("s") for r in found) >= 5
    first = found[0]
    assert first.reason.startswith("because you liked ")
    # the path is a real shared attribute: liked item, relation, value, relation, item
    liked = next(it for it in catalogue() if it.id == first.because)
    mine = next(it for it in catalogue() if it.id == first.key)
    a, rel, value, rel2, b = first.path
    assert (a, b, rel, rel2) == (liked.title, mine.title, rel, rel)
    assert value in liked.attributes[rel] and value in mine.attributes[rel]


def test_a_new_interaction_changes_the_next_list_at_once(rec: Recommender) -> None:
    rec.record_many(interactions())
    rec.train(threads=1)
    rec.record("bob", "c3", "rating", 5)
    before = [r.key for r in rec.recommend("bob", k=5, explore=0.0, record_shown=False)]
    for key in ("s4", "s5", "s6", "s7"):
        rec.record("bob", key, "rating", 5)
    after = [r.key for r in rec.recommend("bob", k=5, explore=0.0, record_shown=False)]
    assert sum(k.startswith("c") for k in before) >= 4
    assert sum(k.startswith("s") for k in after) >= 2
    assert not {"c3", "s4", "s5", "s6", "s7"} & set(after)  # never what they already had


def test_exploration_is_bounded_marked_and_repeatable(rec: Recommender) -> None:
    rec.record("cy", "s1", "rating", 5)
    ten = rec.recommend("cy", k=10, record_shown=False)
    assert sum(r.exploring for r in ten) == 1 and ten[-1].exploring  # one in ten, last
    assert ten[-1].reason == "something a little different from your usual picks"
    again = rec.recommend("cy", k=10, record_shown=False)
    assert [r.key for r in again] == [r.key for r in ten]  # same state, same list
    assert not any(r.exploring for r in rec.recommend("cy", k=10, explore=0.0,
                                                        record_shown=False))
    with pytest.raises(InvalidInputError):
        rec.recommend("cy", k=10, explore=0.9)


def test_items_shown_and_ignored_sink(rec: Recommender) -> None:
    rec.record("dee", "s1", "rating", 5)
    first = rec.recommend("dee", k=3, explore=0.0)[0].key
    for _ in range(2):
        rec.recommend("dee", k=3, explore=0.0)
    ranks = [r.key for r in rec.recommend("dee", k=40, explore=0.0, record_shown=False)]
    assert ranks.index(first) > 0
    rec.record("dee", first, "click")  # a reaction: it is no longer a candidate at all
    assert first not in [r.key for r in rec.recommend("dee", k=39, explore=0.0)]


def test_users_histories_are_their_own(rec: Recommender) -> None:
    rec.record("ann", "s1", "rating", 5)
    rec.record("bob", "c1", "rating", 5)
    assert [h["item"] for h in rec.history("ann")] == ["s1"]
    assert [h["item"] for h in rec.history("bob")] == ["c1"]
    assert all(r.because in (None, "c1") for r in rec.recommend("bob", k=10))
    assert rec.forget("ann") == 1
    assert rec.history("ann") == [] and [h["item"] for h in rec.history("bob")] == ["c1"]


def test_bad_input_changes_nothing(rec: Recommender) -> None:
    good, bad = EventIn("eve", "s1", "like"), EventIn("eve", "nope", "like")
    with pytest.raises(NotFoundError):
        rec.record_many([good, bad])
    with pytest.raises(InvalidInputError, match="unknown kind"):
        rec.record_many([good, EventIn("eve", "s2", "teleport")])
    with pytest.raises(InvalidInputError, match="0 to 5"):
        rec.record("eve", "s2", "rating", 9)
    assert rec.history("eve") == []
    with pytest.raises(InvalidInputError):
        rec.recommend("eve", k=0)
    with pytest.raises(InvalidInputError, match="repeated"):
        rec.import_items([Item("x", "X"), Item("x", "Y")])
    assert rec.size() == 40


def test_training_versions_and_rollback(rec: Recommender) -> None:
    rec.record_many(interactions())
    first = rec.train(threads=1)
    assert first["collaborative"] and first["events"] == len(interactions())
    second = rec.train(threads=1)
    assert [m["status"] for m in rec.models()] == ["retired", "serving"]
    assert rec.use(first["version"])["version"] == 1
    assert [m["status"] for m in rec.models()] == ["serving", "retired"]
    assert second["version"] == 2
    with pytest.raises(NotFoundError):
        rec.use(9)


def test_items_added_after_training_are_recommendable(rec: Recommender) -> None:
    rec.record_many(interactions())
    rec.train(threads=1)
    rec.import_items([Item("s99", "Orbit Two", "A book about orbit and space travel.",
                           {"genre": ["space"], "author": ["A1"]})])
    rec.record("fay", "s0", "rating", 5)
    keys = [r.key for r in rec.recommend("fay", k=41, explore=0.0, record_shown=False)]
    assert "s99" in keys and len(keys) == 40  # 41 items less the one she rated


def test_files(tmp_path: Path) -> None:
    items = read_catalogue(write_catalogue(tmp_path / "books.jsonl"))
    assert len(items) == 40 and items[0].attributes == {"genre": ["space"], "author": ["A0"]}
    (tmp_path / "books.csv").write_text("id,title,description,genre\n1,Dune,Sand.,sf|classic\n")
    (one,) = read_catalogue(tmp_path / "books.csv")
    assert (one.id, one.title, one.text, one.attributes) == ("1", "Dune", "Sand.",
                                                             {"genre": ["sf", "classic"]})
    (tmp_path / "r.csv").write_text("user,item,rating,time\nann,1,4,2024-01-02T03:04:05\n"
                                    "bob,1,,\n")
    a, b = read_interactions(tmp_path / "r.csv")
    assert (a.kind, a.value, a.time.year) == ("rating", 4.0, 2024)
    assert (b.kind, b.value, b.time) == ("like", None, None)
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ml.item").write_text("item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
                                    "7\tHeat\tCrime Thriller\n")
    (folder / "ml.inter").write_text("user_id:token\titem_id:token\trating:float\t"
                                     "timestamp:float\n3\t7\t5\t881250949\n")
    (heat,) = read_catalogue(folder)
    assert (heat.id, heat.title, heat.attributes) == ("7", "Heat", {"genre": ["Crime", "Thriller"]})
    (ev,) = read_interactions(folder)
    assert (ev.user, ev.item, ev.value, ev.time.year) == ("3", "7", 5.0, 1997)
    (tmp_path / "bad.jsonl").write_text('{"id": "1"}\n')
    with pytest.raises(InvalidInputError, match="needs an id and a title"):
        read_catalogue(tmp_path / "bad.jsonl")
    (tmp_path / "bad.csv").write_text("user,item,kind\nann,1,teleport\n")
    with pytest.raises(InvalidInputError, match="unknown kind"):
        list(read_interactions(tmp_path / "bad.csv"))


def test_a_knowledge_graph_type_becomes_the_catalogue(settings: Settings) -> None:
    from dialoop.knowledge import KnowledgeBase
    from dialoop.recommend.graph import items_from_graph

    db = open_database(settings.resolved_database_url)
    try:
        kb = KnowledgeBase(db, settings)
        kb.import_file(Path(__file__).parents[2] / "examples" / "store_support" /
                       "knowledge.jsonl", user="op")
        items = items_from_graph(kb, "product", user="op")
        assert len(items) == 5 and all(i.id == f"kg:{i.title}" for i in items)
        kettle = next(i for i in items if i.title == "Aurora Kettle")
        assert "type" not in kettle.attributes and kettle.attributes  # its facts, not its type
        rec = Recommender(db, HashEmbedder(), settings.home)
        assert rec.import_items(items) == {"added": 5, "updated": 0}
        with pytest.raises(InvalidInputError, match="no entities of type"):
            items_from_graph(kb, "spaceship", user="op")
    finally:
        db.close()
