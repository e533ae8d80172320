"""Recommendations in a conversation: the request is recognised, the list is dialoop's own
words with each item cited, stated likes are recorded first, other messages pass by."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import Settings
from dialoop.recommend.chat import asks_for_one, stated_opinions
from tests.fakes import ScriptedEngine
from tests.recommend.data import catalogue, interactions


@pytest.mark.parametrize("message", [
    "What should I read next?", "Can you recommend a good book?", "Any suggestions?",
    "what could I watch tonight", "Something like Orbit, please.", "I need a recommendation",
    "Suggest me a film", "Is there anything good to watch?", "What's worth reading?",
])
def test_requests_are_recognised(message: str) -> None:
    assert asks_for_one(message)


@pytest.mark.parametrize("message", [
    "What is the capital of France?", "Where is my order 5521?", "I like trains.",
    "Would you recommend that I return it?", "Put this in the suggestion box.",
    "How do I reset my password?", "Tell me about Orbit.",
])
def test_other_messages_are_not_requests(message: str) -> None:
    assert not asks_for_one(message)


def test_stated_likes_and_dislikes() -> None:
    titles = {it.title.lower(): it.id for it in catalogue()}
    assert stated_opinions("I loved Red Planet, but I didn't like Ramen.", titles) == [
        ("s16", "like"), ("c2", "dislike")]
    assert stated_opinions("Tell me about Red Planet.", titles) == []
    assert stated_opinions("I really enjoyed lunar dawn!", titles) == [("s17", "like")]


@pytest.fixture
def bot(settings: Settings) -> Iterator[Assistant]:
    with open_assistant(settings, engine=ScriptedEngine(lambda p, a: "From the model.")
                        ) as assistant:
        assistant.parts.recommender.import_items(catalogue())
        assistant.parts.recommender.record_many(interactions())
        yield assistant


def test_a_request_in_chat_is_answered_from_the_users_list(bot: Assistant) -> None:
    reply = bot.ask("I loved Red Planet and Lunar Dawn. What should I read next?", user="ann")
    rec = bot.parts.recommender
    assert {h["item"] for h in rec.history("ann")} == {"s16", "s17"}  # recorded first
    listed = [line for line in reply.text.splitlines() if line[:2] in {f"{n}." for n in
                                                                       range(1, 10)}]
    assert len(listed) == 5 and "because you liked" in reply.text
    d = reply.trace.dialogue
    assert d is not None and d.decided_by == "knowledge"
    items = d.knowledge["recommend"]["items"]
    assert [i["title"] for i in items] == [line.split(". ", 1)[1].split(":")[0]
                                           for line in listed]
    assert [e.source for e in d.evidence] == [f"item:{i['item']}" for i in items]
    assert {"s16", "s17"}.isdisjoint(i["item"] for i in items)
    # bob's history is untouched, and his list names only his own items
    bot.ask("Any suggestions?", user="bob")
    assert rec.history("bob") == []


def test_other_messages_reach_the_model(bot: Assistant) -> None:
    reply = bot.ask("Hello there, how are you?", user="ann")
    assert reply.text == "From the model."


def test_without_a_catalogue_a_request_is_an_ordinary_message(settings: Settings) -> None:
    with open_assistant(settings, engine=ScriptedEngine(lambda p, a: "From the model.")
                        ) as bot:
        assert bot.ask("What should I read next?", user="ann").text == "From the model."
