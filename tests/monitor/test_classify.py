"""Sentiment and topic from the bundled encoder: clear sentences get their obvious labels."""

from __future__ import annotations

import numpy as np

from dialoop.monitor import MonitorConfig, TopicSpec
from dialoop.monitor.classify import SentimentHead, TopicModel
from dialoop.monitor.training import SeedVectors

CLEAR = [
    ("I absolutely love this bank, the staff are wonderful.", "positive"),
    ("Brilliant app, everything just works.", "positive"),
    ("Record profits sent the shares soaring.", "positive"),
    ("This is the worst service I have ever had.", "negative"),
    ("They stole my money with hidden fees, disgusting.", "negative"),
    ("The shares collapsed after the company admitted fraud.", "negative"),
    ("The branch opens at nine on Monday.", "neutral"),
    ("The annual report will be published in April.", "neutral"),
]


def test_the_builtin_head_labels_clear_sentences(embedder) -> None:  # type: ignore[no-untyped-def]
    head = SeedVectors(embedder).builtin_head()
    said = head.predict(embedder.embed([t for t, _ in CLEAR]))
    assert [s for s, _ in said] == [label for _, label in CLEAR]
    assert all(0.34 < p <= 1.0 for _, p in said)


def test_a_head_survives_storage_without_pickles(embedder) -> None:  # type: ignore[no-untyped-def]
    head = SeedVectors(embedder).builtin_head()
    again = SentimentHead.from_bytes(head.to_bytes(), version=3)
    vectors = embedder.embed([t for t, _ in CLEAR])
    assert again.version == 3
    np.testing.assert_allclose(again.proba(vectors), head.proba(vectors), atol=1e-5)


def test_topics_by_keyword_then_by_nearest_example(embedder) -> None:  # type: ignore[no-untyped-def]
    config = MonitorConfig(topics=(
        TopicSpec("cards", keywords=("card", "atm")),
        TopicSpec("rates", examples=("The bank raised its mortgage rates.",
                                     "Savings accounts pay more interest now.")),
    ))
    texts = ["My card was swallowed by the ATM.",  # keyword
             "Mortgage costs went up by a lot this year.",  # no keyword; near a rates example
             "The weather is lovely today."]  # near nothing
    topics = TopicModel(config, embedder).assign(texts, embedder.embed(texts))
    assert topics == ["cards", "rates", "general"]


def test_what_an_analyst_moved_to_a_topic_draws_similar_texts(embedder) -> None:  # type: ignore[no-untyped-def]
    config = MonitorConfig(topics=(TopicSpec("cards", keywords=("card",)),
                                   TopicSpec("crypto", keywords=("bitcoin",))))
    text = ["Dogecoin holders are panicking tonight."]
    before = TopicModel(config, embedder).assign(text, embedder.embed(text))
    taught = TopicModel(config, embedder, [("Dogecoin fell 20% overnight.", "crypto")])
    assert before == ["general"] and taught.assign(text, embedder.embed(text)) == ["crypto"]
