"""The intent classifier on store_support, with the real embedder."""

from __future__ import annotations

import pytest

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.engine.embedding import default_embedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classifier(store_domain: Domain) -> IntentClassifier:
    return IntentClassifier(store_domain, default_embedder())


@pytest.mark.parametrize(("message", "intent"), [
    ("Has my parcel been sent out?", "order_status"),
    ("The toaster I bought is broken and I want my money back", "return_request"),
    ("What does delivery to Canada cost?", "shipping_cost"),
    ("Is the Stratus lamp dimmable?", "product_question"),
    ("Are you open on Saturdays?", "opening_hours"),
    ("Can I talk to a human please", "talk_to_person"),
    ("hi!", "chit_chat"),
    ("Who won the world cup in 2010?", "out_of_scope"),
])
def test_clear_messages_get_their_intent_with_confidence(
    classifier: IntentClassifier, message: str, intent: str
) -> None:
    result = classifier.classify(message)
    assert result.intent == intent
    assert result.confidence >= 0.45
    assert sum(p for _, p in result.ranking) == pytest.approx(1.0)
    assert result.ranking[0] == (intent, pytest.approx(result.confidence))


def test_nothing_like_the_domain_is_out_of_domain(classifier: IntentClassifier) -> None:
    result = classifier.classify("Explain quantum chromodynamics to me")
    assert result.out_of_domain and result.intent == "out_of_scope"


def test_slot_values_are_masked_before_classifying(classifier: IntentClassifier) -> None:
    assert classifier.delexicalize("track 8850 for ann@example.com") == \
        "track order number for email"
    assert classifier.classify("track 8850").intent == "order_status"
