"""Several copies of one llama.cpp model, so that the server answers several people at once.

One llama.cpp context decodes one sequence at a time, and a 135M model cannot keep
two cores busy with one sequence: most of each token's time is per-token overhead,
not arithmetic. Two contexts with one thread each decode two sequences in nearly
the time one takes (see ``benchmarks/bench_server.py``). A pool is also more robust
on a busy machine: llama.cpp's threads of one context wait for each other at every
layer, so one descheduled thread stalls the whole token.

The pool is itself an :class:`~dialoop.engine.Engine`: the assistant does not know it
is talking to several. A request goes to a free copy, preferring the one whose last
prompt shares the longest prefix with it (its KV cache can be reused); adapters are
loaded into every copy. Only a last prompt of the request's own ``cache_scope`` counts:
an engine cannot reuse another scope's state, and a choice made on what another user's
prompt shares would show in the cached-token count the request gets back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from dialoop.config import Settings
from dialoop.engine import Chunk, Engine, GenerationParams, Message, open_engine
from dialoop.engine.llamacpp import default_threads
from dialoop.errors import ConfigError

__all__ = ["EnginePool", "open_engines"]


class EnginePool:
    """``size`` engines of the same model behind the Engine protocol."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        if not engines:
            raise ValueError("an engine pool needs at least one engine")
        self._engines = list(engines)
        first = self._engines[0]
        self.kind = first.kind
        self.name = first.name
        self.context_window = min(e.context_window for e in self._engines)
        self._free = set(range(len(self._engines)))
        # (cache scope, rendered text) of each engine's last prompt
        self._last_prompt: list[tuple[str | None, str]] = [(None, "")] * len(self._engines)
        self._cond = threading.Condition()

    @property
    def size(self) -> int:
        return len(self._engines)

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._engines) - len(self._free)

    def render(self, messages: Sequence[Message]) -> str:
        return self._engines[0].render(messages)

    def count_tokens(self, text: str) -> int:
        return self._engines[0].count_tokens(text)

    def escape(self, text: str) -> str:
        return self._engines[0].escape(text)

    def stream(
        self, messages: Sequence[Message], params: GenerationParams, *,
        adapter: str | None = None, cache_scope: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        return self._stream(messages, (cache_scope, self.render(messages)), params, adapter, stop)

    def _stream(
        self, messages: Sequence[Message], prompt: tuple[str | None, str],
        params: GenerationParams, adapter: str | None, stop: threading.Event | None,
    ) -> Iterator[Chunk]:
        i = self._acquire(prompt)
        try:  # ``stop`` reaches the copy this request runs on, and no other
            yield from self._engines[i].stream(messages, params, adapter=adapter,
                                               cache_scope=prompt[0], stop=stop)
        finally:
            self._release(i, prompt)

    def _acquire(self, prompt: tuple[str | None, str]) -> int:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._free))
            best = max(sorted(self._free), key=lambda i: _shared(self._last_prompt[i], prompt))
            self._free.remove(best)
            return best

    def _release(self, i: int, prompt: tuple[str | None, str]) -> None:
        with self._cond:
            self._last_prompt[i] = prompt
            self._free.add(i)
            self._cond.notify()

    def cancel(self) -> None:
        """Stop every copy's generation (one request's: pass ``stop`` to :meth:`stream`)."""
        for engine in self._engines:
            engine.cancel()

    def load_adapter(self, name: str, path: Path) -> None:
        for engine in self._engines:
            engine.load_adapter(name, path)

    def unload_adapter(self, name: str) -> None:
        for engine in self._engines:
            engine.unload_adapter(name)

    def close(self) -> None:
        for engine in self._engines:
            engine.close()


def _shared(last: tuple[str | None, str], prompt: tuple[str | None, str]) -> int:
    """Characters of ``prompt`` the engine that ran ``last`` may reuse (none across scopes)."""
    if last[0] != prompt[0]:
        return 0
    return len(os.path.commonprefix([last[1], prompt[1]]))


def open_engines(settings: Settings, count: int) -> Engine:
    """The engine ``settings`` ask for, or a pool of ``count`` sharing the cores.

    Each copy gets ``threads // count`` threads (at least one). With ``batch_slots`` set,
    one :class:`~dialoop.engine.batched.BatchedEngine` decoding that many answers at once
    replaces the pool (``count`` must then be 1).
    """
    if count < 1:
        raise ConfigError(f"--engines must be at least 1, got {count}.")
    if settings.batch_slots:
        return _open_batched(settings, count)
    if count == 1:
        return open_engine(settings)
    if settings.engine != "llamacpp":
        raise ConfigError(
            f"Several engines need the llamacpp engine, not {settings.engine}: "
            "use --engines 1."
        )
    threads = max(1, (settings.threads or default_threads()) // count)
    each = settings.model_copy(update={"threads": threads})
    engines: list[Engine] = []
    try:
        for _ in range(count):
            engines.append(open_engine(each))
    except Exception:
        for engine in engines:
            engine.close()
        raise
    return EnginePool(engines)



def _open_batched(settings: Settings, count: int) -> Engine:
    if settings.engine != "llamacpp":
        raise ConfigError(f"Batched decoding needs the llamacpp engine, not {settings.engine}: "
                          "set batch_slots = 0.")
    if count != 1:
        raise ConfigError(f"Batched decoding runs one engine, not {count}: use --engines 1 "
                          "or set batch_slots = 0.")
    return open_engine(settings, batch_slots=settings.batch_slots)
