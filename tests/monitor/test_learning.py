"""Analysts' corrections are stored, retraining learns the corrected kind of text, and the
gate keeps a head that would be worse out of service."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.monitor import ItemIn
from dialoop.store.monitor import MonitorCorrection

T0 = datetime(2026, 3, 2, tzinfo=UTC)
# Crypto slang: the built-in head, trained on plain sentences, gets about half of it wrong.
POSITIVE = ["{t} is going to the moon", "{t} mooned overnight, HODL",
            "{t} printed money for me today", "{t} ripped higher, diamond hands",
            "{t} broke out to new highs, wagmi", "{t} just pumped, lambo soon"]
NEGATIVE = ["got rekt on {t}", "{t} was a rug pull", "{t} dumped hard, bagholders everywhere",
            "{t} crashed through support, ngmi", "{t} is a total shitcoin",
            "{t} got liquidated again"]
TAUGHT, UNSEEN = ["DOGE", "PEPE", "SHIB", "BONK"], ["FLOKI", "WIF", "TURBO"]


def _slang(tickers: list[str]) -> list[tuple[str, str]]:
    return [(p.format(t=t), "positive") for t in tickers for p in POSITIVE] + \
           [(n.format(t=t), "negative") for t in tickers for n in NEGATIVE]


def _accuracy(monitor, pairs: list[tuple[str, str]], user: str) -> float:  # type: ignore[no-untyped-def]
    labels, _ = monitor.label([t for t, _ in pairs], user=user)
    return sum(lab.sentiment == want for lab, (_, want) in zip(labels, pairs, strict=True)) / len(pairs)


def test_retraining_on_corrections_learns_the_corrected_kind(make_monitor, db) -> None:  # type: ignore[no-untyped-def]
    monitor = make_monitor()
    taught = _slang(TAUGHT)
    result = monitor.ingest([ItemIn(t, T0) for t, _ in taught], user="ann")
    wrong = [(item_id, want) for item_id, lab, (_, want) in zip(
        result.ids, monitor.label([t for t, _ in taught], user="ann")[0], taught, strict=True)
        if lab.sentiment != want]
    assert len(wrong) >= 10  # the built-in head does need teaching here
    for item_id, want in wrong:
        monitor.correct(item_id, user="ann", sentiment=want)
    with db.read() as s:
        assert s.query(MonitorCorrection).filter_by(user_id="ann").count() == len(wrong)

    before = _accuracy(monitor, _slang(UNSEEN), "ann")
    report = monitor.train(user="ann")
    after = _accuracy(monitor, _slang(UNSEEN), "ann")
    assert report["accepted"], report
    assert report["serving"] == 1 and report["check_accuracy"]["candidate"] >= 0.9
    assert after >= before + 0.2, (before, after)
    assert _accuracy(monitor, _slang(UNSEEN), "bob") == before  # bob's head is unchanged


def test_the_gate_refuses_a_head_trained_on_wrong_corrections(make_monitor) -> None:  # type: ignore[no-untyped-def]
    monitor = make_monitor()
    plain = ["I love this bank, great people.", "Fantastic app, so easy to use.",
             "Really happy with the fast refund.", "Wonderful support team, thank you.",
             "The best savings rate around.", "Superb service at the branch today."]
    texts = [f"{p} {n}" for n in ("Yes!", "Truly.", "Again.", "Really.", "Wow.", "Great.",
                                   "Honestly.") for p in plain]
    ids = monitor.ingest([ItemIn(t, T0) for t in texts], user="ann").ids
    for item_id in ids:  # an analyst who clicked "negative" on everything
        monitor.correct(item_id, user="ann", sentiment="negative")
    report = monitor.train(user="ann")
    assert not report["accepted"], report
    assert report["serving"] == 0 and "check sentences" in report["reason"]
    assert monitor.label(["What a great day, I love it!"], user="ann")[0][0].sentiment == "positive"
    assert [h["status"] for h in monitor.heads(user="ann")] == ["rejected"]


def test_corrections_are_checked_and_only_for_ones_own_items(make_monitor) -> None:  # type: ignore[no-untyped-def]
    monitor = make_monitor()
    (item_id,) = monitor.ingest([ItemIn("Great service!", T0)], user="ann").ids
    with pytest.raises(NotFoundError):
        monitor.correct(item_id, user="bob", sentiment="negative")
    with pytest.raises(InvalidInputError, match="one of negative, neutral, positive"):
        monitor.correct(item_id, user="ann", sentiment="angry")
    with pytest.raises(InvalidInputError, match="Unknown topic"):
        monitor.correct(item_id, user="ann", topic="crypto")
    with pytest.raises(InvalidInputError, match="at least 4"):
        monitor.train(user="ann")
    assert monitor.items(user="ann")[0]["corrected"] is False
