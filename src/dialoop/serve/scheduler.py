"""Running synchronous answers for an asynchronous server.

The assistant and its engines are synchronous; the server is not. Each answer runs
on a worker thread (one per engine that can generate at once) and hands its text
pieces to the event loop through an :class:`asyncio.Queue`. The scheduler bounds
how many answers may wait: past ``slots + max_waiting`` a request is refused at
once with :class:`ServerBusyError` (HTTP 503) instead of queueing without end.

Stopping: a client that goes away sets the generation's ``stop`` flag, which is also
the reply stream's: the engine stops at once, even mid-way through evaluating a long
prompt, and the worker closes the stream, which stores the partial answer marked
``cancelled``. A generation stopped while it
still waits for a thread never touches the engine, nor one stopped while its
session was opened (the flag is checked again before the answer starts).

Shutting down is bounded: :meth:`Scheduler.stop_all` (called as soon as the server
is told to stop) refuses new answers and stops every running one; waiting ones end
with a 503 for their clients. :meth:`Scheduler.shutdown` then waits at most
``timeout`` seconds for the worker threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
        self._refusal: DialoopError | None = None  # why it stopped, for a client still there

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

    def cancel(self, refusal: DialoopError | None = None) -> None:
        """Stop the answer. ``refusal``: the error its reader gets if the answer had not
        begun (the server shutting down); without it, the client is gone and the reader
        just sees the end."""
        if refusal is not None and self._refusal is None:
            self._refusal = refusal
        self.stop.set()

    # -- worker side -----------------------------------------------------------------

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): stop
            self.stop.set()

    def _run(self, start: Callable[[Generation], ReplyStream]) -> None:
        try:
            if self._stopped():
                return
            stream = start(self)
            stream.stop = self.stop  # the engine watches it, even while evaluating the prompt
            try:
                if self._stopped():  # stopped while the session was opened: do not answer
                    return
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

    def _stopped(self) -> bool:
        """Whether to stop before answering; the refusal, if any, goes to the reader."""
        if not self.stop.is_set():
            return False
        if self._refusal is not None:  # set before the flag (see cancel)
            self._put(self._refusal)
        return True

    def _never_started(self) -> None:
        """The end, for a generation whose worker was cancelled before it ran."""
        self._put(self._refusal or _shutting_down())
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
        self._closed = False  # shutting down: no new answers
        self._live: weakref.WeakSet[Generation] = weakref.WeakSet()
        self._futures: set[concurrent.futures.Future[None]] = set()  # queued or running
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
            if self._closed:
                raise _shutting_down()
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
        with self._count_lock:  # stop_all stops every generation added before it began
            closed = self._closed
            if not closed:
                self._live.add(gen)
                future = self._executor.submit(self._work, gen, start, lock)
                self._futures.add(future)
        if closed:  # shutting down since it was admitted (it may have waited for the lock)
            self._give_back(gen, lock)
            raise _shutting_down()
        future.add_done_callback(lambda f: self._forget(f, gen, lock))
        return gen

    def _forget(
        self, future: concurrent.futures.Future[None], gen: Generation, lock: asyncio.Lock | None
    ) -> None:
        with self._count_lock:
            self._futures.discard(future)
        if future.cancelled():  # dropped from the queue at shutdown: _work never ran
            gen._never_started()
            self._give_back(gen, lock)

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
            self._give_back(gen, lock)  # the turn is stored: the session's next may start

    def _give_back(self, gen: Generation, lock: asyncio.Lock | None) -> None:
        """Free an admitted answer's place and its session's turn."""
        self._release()
        if lock is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is gone
                gen._loop.call_soon_threadsafe(lock.release)

    def _release(self) -> None:
        with self._count_lock:
            self._admitted -= 1
            self._last_active = time.monotonic()

    def stop_all(self) -> None:
        """Refuse new answers and stop every one admitted: running answers end after their
        next piece (stored, marked cancelled); waiting ones end with a 503."""
        with self._count_lock:
            self._closed = True
        for gen in list(self._live):
            gen.cancel(_shutting_down())

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop every answer (:meth:`stop_all`), drop those still queued, and wait at most
        ``timeout`` seconds for the running ones to end. Whether they all did.

        An answer stops within one token of the engine (the llama.cpp engine stops even
        while evaluating a prompt); what can outlast the timeout is an engine that cannot
        be interrupted mid-call (the torch engine evaluating a long prompt, a remote one).
        """
        self.stop_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._count_lock:
            running = set(self._futures)
        _, pending = concurrent.futures.wait(running, timeout=timeout)
        if pending:
            log.warning("%d answer(s) still running %.0f s after shutdown began; not "
                        "waiting for them", len(pending), timeout)
        return not pending


def _shutting_down() -> ServerBusyError:
    return ServerBusyError("The server is shutting down: try again in a moment.")
