"""Stopping answers: promptly, within a bound, and without answering for a client that left
(issue 12: SIGTERM did not stop a busy server within 60 s)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dialoop.assistant import open_parts
from dialoop.errors import ServerBusyError
from dialoop.serve.scheduler import Generation, Scheduler
from tests.integration.cli import free_port, serve


class _Stream:
    """A reply stream: ``pieces`` text pieces, each after ``go`` is set; counts what it did."""

    def __init__(self, go: threading.Event, pieces: int = 1) -> None:
        self.go, self.pieces = go, pieces
        self.reply = None
        self.started = self.closed = False

    def __iter__(self) -> Iterator[str]:
        self.started = True
        for i in range(self.pieces):
            self.go.wait(30)
            yield f"piece {i} "

    def close(self) -> None:
        self.closed = True


def test_an_answer_stopped_while_its_session_opens_never_starts() -> None:
    scheduler = Scheduler(1, 4)
    stream = _Stream(threading.Event())
    stream.go.set()

    def start(gen: Generation) -> _Stream:  # the client leaves while the session is opened
        gen.cancel()
        return stream

    async def serve() -> list[str]:
        gen = await scheduler.submit(start)  # type: ignore[arg-type]
        return [p async for p in gen.pieces()]

    try:
        assert asyncio.run(serve()) == []
    finally:
        scheduler.shutdown()
    assert not stream.started  # the engine was never asked


def test_shutdown_is_bounded_and_tells_waiting_clients() -> None:
    scheduler = Scheduler(1, 4)
    stuck = threading.Event()  # the running answer is inside one long engine call

    async def serve() -> tuple[list[str], BaseException | None, float]:
        running = await scheduler.submit(lambda g: _Stream(stuck))  # type: ignore[arg-type,return-value]
        waiting = await scheduler.submit(lambda g: _Stream(stuck))  # type: ignore[arg-type,return-value]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        all_ended = await asyncio.to_thread(scheduler.shutdown, 0.5)
        took = time.monotonic() - started
        assert not all_ended
        error = None
        try:
            await asyncio.wait_for(waiting.next(), 5)
        except ServerBusyError as exc:
            error = exc
        with pytest.raises(ServerBusyError, match="shutting down"):
            await scheduler.submit(lambda g: _Stream(stuck))  # type: ignore[arg-type,return-value]
        stuck.set()  # the engine call returns: the running answer ends at its next piece
        return [p async for p in running.pieces()], error, took

    pieces, error, took = asyncio.run(serve())
    assert took < 2  # not "until the engine is done"
    assert isinstance(error, ServerBusyError) and "shutting down" in str(error)
    assert pieces == ["piece 0 "]  # stopped after its current piece
    assert scheduler.running == scheduler.waiting == 0


def test_an_answer_waiting_for_its_session_at_shutdown_never_runs() -> None:
    scheduler = Scheduler(2, 4)
    go = threading.Event()
    second = _Stream(go)

    async def serve() -> None:
        first = await scheduler.submit(lambda g: _Stream(go), session_key="trip")  # type: ignore[arg-type,return-value]
        waiting = asyncio.create_task(
            scheduler.submit(lambda g: second, session_key="trip"))  # type: ignore[arg-type,return-value]
        await asyncio.sleep(0.05)  # the second waits for the first to finish its turn
        scheduler.stop_all()
        go.set()
        assert [p async for p in first.pieces()] == ["piece 0 "]
        with pytest.raises(ServerBusyError, match="shutting down"):
            await waiting

    try:
        asyncio.run(serve())
    finally:
        scheduler.shutdown()
    assert not second.started
    assert scheduler.running == scheduler.waiting == 0


# -- a real `dialoop serve`, stopped with SIGTERM in the middle of a long answer -----------



@pytest.mark.slow
def test_sigterm_stops_a_server_in_the_middle_of_a_long_answer(dialoop_home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = serve(dialoop_home, port)
    # Temperature 2 rambles on to max_tokens: minutes of answer at the bundled model's speed.
    long = {"model": "default", "stream": True, "temperature": 2, "seed": 1, "max_tokens": 4000,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    queued = {"model": "default", "messages": [{"role": "user", "content": "Hello?"}]}
    try:
        with httpx.Client(base_url=url, timeout=60) as http, ThreadPoolExecutor(1) as pool, \
                http.stream("POST", "/v1/chat/completions", json=long) as stream:
            lines = stream.iter_lines()
            events = [next(lines) for _ in range(12)]  # the answer is under way
            waiting = pool.submit(http.post, "/v1/chat/completions", json=queued)
            while http.get("/api/health").json()["answers"]["waiting"] < 1:
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            events += list(lines)  # the stream ends properly, without its 4,000 tokens
            refused = waiting.result()
        process.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert took < 4  # before: uvicorn's 5 s grace, then however long the engine took
    data = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    assert [e for e in events if e][-1] == "data: [DONE]"
    assert data[-1]["choices"][0]["finish_reason"] == "stop"
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]
    # The partial answer is stored, marked cancelled; the refused request stored nothing.
    parts = open_parts()
    try:
        sessions = parts.sessions.list("local")
        assert len(sessions) == 1
        answer = parts.sessions.turns(sessions[0].session)[-1]
        assert (answer.role, answer.status) == ("assistant", "cancelled")
        assert answer.content and answer.completion_tokens < 4000
    finally:
        parts.close()
