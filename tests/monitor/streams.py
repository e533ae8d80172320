"""Generated streams for the monitor's tests: a calm baseline, with or without a surge."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from dialoop.monitor import ItemIn

START = datetime(2026, 3, 2, tzinfo=UTC)
CALM = [
    "The app update looks clean and loads quickly.",
    "Love the new budgeting screen in the app.",
    "The app asked me to confirm my phone number.",
    "Checked my balance in the app this morning.",
    "The app has a new dark mode.",
    "Great app, paying friends is quick and easy.",
    "The app is slow today, annoying.",
]
ANGRY = [
    "The app is down again and I can't pay my rent.",
    "App crashing every time I open it, useless.",
    "Cannot log in to the app at all, what a mess.",
    "The app outage made me miss a payment, awful.",
    "Still no access to my account through the app, furious.",
]


def stream(hours: int = 24, per_hour: int = 8, surge_at: int | None = None,
           surge: int = 20, seed: int = 0) -> list[ItemIn]:
    """``per_hour`` calm items an hour (one in seven of them mildly negative), and ``surge``
    angry ones in hour ``surge_at``."""
    rng = random.Random(seed)
    items = []
    for hour in range(hours):
        n = per_hour + rng.randint(-1, 1)
        for k in range(n):
            items.append(ItemIn(rng.choice(CALM), START + timedelta(hours=hour, minutes=k)))
        if hour == surge_at:
            for k in range(surge):
                items.append(ItemIn(ANGRY[k % len(ANGRY)],
                                    START + timedelta(hours=hour, minutes=30 + k)))
    return items
