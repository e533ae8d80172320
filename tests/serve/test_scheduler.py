"""The scheduler's idle time, which starts consolidation runs when the server is quiet."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

from dialoop.serve.scheduler import Scheduler


class _Stream:
    """A reply stream that writes one piece once it is let go."""

    reply = None

    def __init__(self, go: threading.Event) -> None:
        self.go = go

    def __iter__(self) -> Iterator[str]:
        self.go.wait(5)
        yield "Hello."

    def close(self) -> None:
        pass


def test_idle_time_counts_from_the_last_answer() -> None:
    scheduler = Scheduler(1, 4)
    go = threading.Event()

    async def serve() -> None:
        time.sleep(0.05)
        assert scheduler.idle_seconds() >= 0.05  # idle since it started
        gen = await scheduler.submit(lambda g: _Stream(go))  # type: ignore[arg-type,return-value]
        await asyncio.sleep(0.05)
        assert scheduler.idle_seconds() == 0.0  # answering is not idle
        go.set()
        assert [p async for p in gen.pieces()] == ["Hello."]
        for _ in range(200):  # the slot is given back just after the last piece
            if scheduler.idle_seconds() > 0:
                break
            await asyncio.sleep(0.01)
        assert 0 < scheduler.idle_seconds() < 1  # counted again from the answer's end

    try:
        asyncio.run(serve())
    finally:
        scheduler.shutdown()
