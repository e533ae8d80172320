"""Running synchronous answers for an asynchronous server.

The assistant and its engines are synchronous; the server is not. Each answer runs
on a worker thread (one per engine that can generate at once) and hands its text
pieces to the event loop through an :class:`asyncio.Queue`. The scheduler bounds
how many answers may wait: past ``slots + max_waiting`` a request is refused at
once with :class:`ServerBusyError` (HTTP 503) instead of queueing without end.

Stopping: a client that goes away sets the generation's ``stop`` flag; the worker
closes the assistant's reply stream after the next piece, which stops the engine
and stores the partial answer marked ``cancelled``. A generation stopped while it
still waits for a thread never touches the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dialoop.assistant import Reply, ReplyStream
from dialoop.errors import DialoopError, ServerBusyError

__all__ = ["Generation", "Scheduler", "ServerBusyError"]

log = logging.getLogger(__name__)

_END = object()


class Generation:
    """One answer produced on a worker thread, read on the event loop.

    ``start`` runs on the worker thread and returns the assistant's reply stream
    (creating or seeding the session first if it must); ``context`` is whatever
    ``start`` wants to report before the first piece (the session, say).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.stop = threading.Event()
        self.reply: Reply | None = None
        self.context: dict[str, Any] = {}
        self._loop = loop
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._done = False

    async def next(self) -> str | None:
        """The next piece of text; None when the answer is complete. Raises its error."""
        if self._done:
            return None
        item = await self._events.get()
        if item is _END:
            self._done = True
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        assert isinstance(item, str)
        return item

    async def pieces(self) -> AsyncIterator[str]:
        while (piece := await self.next()) is not None:
            yield piece

    def cancel(self) -> None:
        self.stop.set()

    # -- worker side -----------------------------------------------------------------

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): stop
            self.stop.set()

    def _run(self, start: Callable[[Generation], ReplyStream]) -> None:
        try:
            if self.stop.is_set():
                return
            stream = start(self)
            try:
                for piece in stream:
                    self._put(piece)
                    if self.stop.is_set():
                        break
            finally:
                stream.close()  # mid-way: stops the engine, stores the partial answer
            self.reply = stream.reply
        except DialoopError as exc:
            self._put(exc)
        except Exception as exc:
            log.exception("generation failed")
            self._put(exc)
        finally:
            self._put(_END)


class Scheduler:
    """Admits generations up to a bound and runs them on ``slots`` worker threads."""

    def __init__(self, slots: int = 1, max_waiting: int = 32) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("slots >= 1 and max_waiting >= 0")
        self.slots = slots
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(slots, thread_name_prefix="dialoop-answer")
        self._admitted = 0
        self._running = 0
        self._count_lock = threading.Lock()
        self._last_active = time.monotonic()  # when an answer was last admitted or finished
        self._live: weakref.WeakSet[Generation] = weakref.WeakSet()
        self._session_locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.on_finish: list[Callable[[Generation], None]] = []

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running

    @property
    def capacity(self) -> int:
        return self.slots + self.max_waiting

    def idle_seconds(self) -> float:
        """Seconds since the last answer finished (or the scheduler started); 0 while any
        answer runs or waits."""
        with self._count_lock:
            if self._admitted:
                return 0.0
            return time.monotonic() - self._last_active

    async def submit(
        self, start: Callable[[Generation], ReplyStream], *, session_key: Hashable | None = None
    ) -> Generation:
        """Admit one answer and queue it; raise :class:`ServerBusyError` if too many wait.

        The caller reads the returned generation and must ``cancel()`` it if it stops
        reading early. Answers with the same ``session_key`` run one after another, so
        that their turns do not interleave.
        """
        with self._count_lock:
            if self._admitted >= self.capacity:
                raise ServerBusyError(
                    f"The server is busy: {self._admitted} answers are running or waiting "
                    f"(the limit is {self.capacity}). Try again in a few seconds."
                )
            self._admitted += 1
            self._last_active = time.monotonic()
        loop = asyncio.get_running_loop()
        lock: asyncio.Lock | None = None
        try:
            if session_key is not None:
                lock = self._session_locks.setdefault(session_key, asyncio.Lock())
                await lock.acquire()
        except BaseException:
            self._release()
            raise
        gen = Generation(loop)
        self._live.add(gen)
        self._executor.submit(self._work, gen, start, lock)
        return gen

    def _work(
        self,
        gen: Generation,
        start: Callable[[Generation], ReplyStream],
        lock: asyncio.Lock | None,
    ) -> None:
        with self._count_lock:
            self._running += 1
        try:
            gen._run(start)
            for hook in self.on_finish:
                hook(gen)
        finally:
            with self._count_lock:
                self._running -= 1
            self._release()
            if lock is not None:  # the turn is stored: the session's next answer may start
                with contextlib.suppress(RuntimeError):  # the event loop is gone
                    gen._loop.call_soon_threadsafe(lock.release)

    def _release(self) -> None:
        with self._count_lock:
            self._admitted -= 1
            self._last_active = time.monotonic()

    def shutdown(self) -> None:
        """Stop every generation and wait for the worker threads to finish."""
        for gen in list(self._live):
            gen.cancel()
        self._executor.shutdown(wait=True, cancel_futures=False)
