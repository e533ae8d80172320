"""Replay labelled review sentences as a timed stream (JSON Lines on stdout), with a surge.

    python examples/sentiment_monitor/uci_stream.py --data package/test/fixtures \\
        | dialoop monitor --config examples/sentiment_monitor/reviews.yaml ingest -

``--data``: the ``test/fixtures`` folder of the npm package ``sentiment`` (the UCI
Sentiment Labelled Sentences: Amazon, IMDb and Yelp review sentences, CC BY 4.0), or
your own JSONL/CSV with text and label. ``--per-day`` sentences are dated each day from
2026-03-01 on, in a shuffled order; on ``--surge-day`` the negative sentences of
``--surge-source`` come in a burst. Each line keeps the sentence's label and source, so
``dialoop monitor items --json`` can be checked against them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialoop.monitor.read import read_labelled

START = datetime(2026, 3, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--per-day", type=int, default=30)
    parser.add_argument("--surge-day", type=int, default=20)
    parser.add_argument("--surge-source", default="yelp")
    parser.add_argument("--surge-size", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = read_labelled(args.data)
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    burst = [r for r in rows if r[2] == args.surge_source and r[1] == "negative"]
    burst = burst[:args.surge_size]
    calm = [r for r in rows if r not in burst]
    out = sys.stdout
    for n, (text, label, source) in enumerate(calm):
        day, slot = divmod(n, args.per_day)
        when = START + timedelta(days=day, seconds=slot * 86400 // args.per_day)
        out.write(json.dumps({"text": text, "time": when.isoformat(), "source": source,
                              "label": label}) + "\n")
        if day == args.surge_day and slot == 0:
            for k, (b_text, b_label, b_source) in enumerate(burst):
                at = when + timedelta(hours=12, minutes=k)
                out.write(json.dumps({"text": b_text, "time": at.isoformat(),
                                      "source": b_source, "label": b_label}) + "\n")


if __name__ == "__main__":
    main()
