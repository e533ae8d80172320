"""A user's correction of a graph answer teaches a relation alias, in the user's scope.

"What films does Elena Voss appear in?" is declined on a graph whose relation is only
called ``starred_actors``; corrected with the films, or with "no, I meant the films she
starred in", "appear in" becomes an alias of ``starred_actors`` for that user: their
next question with those words is answered from the graph, and nobody else's is.

No embedding model runs: the matcher is built without one, as in test_kg_bare_relations.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dialoop.config import Settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.schema import KgRelationAlias
from dialoop.store import Database
from tests.knowledge.film_graph import APPEAR, load_films


@pytest.fixture
def films(kb: KnowledgeBase, settings: Settings) -> Iterator[KnowledgeBase]:
    yield load_films(kb, settings)


def _aliases(db: Database) -> list[tuple[str, str, int | None]]:
    with db.read() as s:
        return [tuple(r) for r in s.execute(sa.select(
            KgRelationAlias.phrase, KgRelationAlias.scope, KgRelationAlias.lesson_id))]


def test_a_correction_with_the_answer_teaches_the_alias_for_that_user_only(
        films: KnowledgeBase, db: Database) -> None:
    assert films.ask(APPEAR, user="ann").status == "unknown"  # declined, not invented
    learned = films.learn_alias(APPEAR, "Copper Sky and Salt Road", user="ann",
                                scope=Scope.of("ann"), lesson_id=3)
    assert learned is not None
    assert (learned.relation, learned.phrase, learned.scope) == (
        "starred_actors", "appear in", "user:ann")
    assert not learned.clarification
    assert _aliases(db) == [("appear in", "user:ann", 3)]

    # The next question with the phrase, about someone else, is answered from the graph.
    answer = films.ask("Which films did Jonah Reyes appear in?", user="ann")
    assert answer.status == "answered"
    assert sorted(answer.values) == ["Copper Sky", "Glass Harbor"]
    assert {t.relation_key for t in answer.triples} == {"starred_actors"}
    # Another user is unaffected.
    assert films.ask("Which films did Jonah Reyes appear in?", user="bob").status == "unknown"
    assert films.ask(APPEAR, user="bob").status == "unknown"


def test_a_correction_naming_the_relation_teaches_it_too(films: KnowledgeBase) -> None:
    learned = films.learn_alias(APPEAR, "No, I meant the films she starred in.", user="ann",
                                scope=Scope.of("ann"), lesson_id=4)
    assert learned is not None and learned.relation == "starred_actors"
    assert learned.clarification
    assert "Copper Sky" in learned.answer and "Salt Road" in learned.answer
    assert films.ask(APPEAR, user="ann").status == "answered"


@pytest.mark.parametrize(("question", "correction"), [
    # the values belong to two relations of the entity (Tomas Brandt directed and wrote)
    ("What films is Tomas Brandt credited on?", "Glass Harbor and Salt Road"),
    # the correction states nothing the entity's facts hold, and names no relation
    (APPEAR, "Something else entirely."),
    # values of one relation, words of another
    (APPEAR, "She directed Copper Sky."),
    # the question names no entity of the graph
    ("What films does Greta Lind appear in?", "Copper Sky"),
    # the question already names the relation: the words were not what was missing
    ("Which films did Elena Voss act in?", "Copper Sky and Salt Road"),
    # too many words nothing explains: a misread question, not a missing word
    ("What films does Elena Voss appear in alongside famous old friends lately?", "Copper Sky"),
])
def test_bad_or_ambiguous_corrections_teach_nothing(films: KnowledgeBase, db: Database,
                                                    question: str, correction: str) -> None:
    assert films.learn_alias(question, correction, user="ann", scope=Scope.of("ann"),
                             lesson_id=5) is None
    assert _aliases(db) == []


def test_an_alias_that_does_not_make_the_graph_answer_is_not_kept(films: KnowledgeBase,
                                                                   db: Database) -> None:
    # "How many films …" corrected with the films: "appear in" would make the graph count
    # them (2), not say them back, so the alias is tried and removed again.
    assert films.learn_alias("How many films does Elena Voss appear in?",
                             "Copper Sky and Salt Road", user="ann", scope=Scope.of("ann"),
                             lesson_id=6) is None
    assert _aliases(db) == []


def test_a_turn_whose_trace_shows_no_graph_lookup_teaches_nothing(films: KnowledgeBase,
                                                                  db: Database) -> None:
    for trace in ({}, {"graph": {"status": "unrelated", "analysis": {"anchors": []}}}):
        assert films.learn_alias(APPEAR, "Copper Sky", user="ann", scope=Scope.of("ann"),
                                 lesson_id=7, knowledge=trace) is None
    assert _aliases(db) == []
    declined = films.lookup(APPEAR, user="ann").describe()  # as the dialogue trace holds it
    assert films.learn_alias(APPEAR, "Copper Sky", user="ann", scope=Scope.of("ann"),
                             lesson_id=7, knowledge=declined) is not None


def test_forgetting_the_lesson_forgets_the_alias(films: KnowledgeBase, db: Database) -> None:
    films.learn_alias(APPEAR, "Copper Sky and Salt Road", user="ann", scope=Scope.of("ann"),
                      lesson_id=8)
    films.forget(scope=Scope.of("bob"), lesson_id=8)  # another scope's lesson 8: not ann's
    assert len(_aliases(db)) == 1
    films.forget(scope=Scope.of("ann"), lesson_id=8)
    assert _aliases(db) == []
    assert films.ask(APPEAR, user="ann").status == "unknown"


def test_a_promoted_lesson_takes_its_alias_to_everyone(films: KnowledgeBase, db: Database
                                                       ) -> None:
    films.learn_alias(APPEAR, "Copper Sky and Salt Road", user="ann", scope=Scope.of("ann"),
                      lesson_id=9)
    films.move_aliases(scope=Scope.of("ann"), lesson_id=9, to_scope=Scope.everyone(),
                       to_lesson_id=10)
    assert _aliases(db) == [("appear in", "global", 10)]
    assert films.ask(APPEAR, user="bob").status == "answered"
