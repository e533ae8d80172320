"""Which adapter versions are loaded into an engine, hot-swapped safely under concurrent use.

The server answers on several threads at once while a consolidation run may promote
a new version of an adapter line (``global@v3`` replacing ``global@v2``). A version
is loaded on first use and the versions it replaces are unloaded — but only once no
answer in progress still generates with them: each use holds a reference, and a
replaced version is unloaded when its last reference is released.

    slots = LoadedAdapters(engine, locate=lambda key: store.files(store.resolve(key), kind))
    with slots.use("global@v3") as key:   # loaded now if it was not
        for chunk in engine.stream(messages, params, adapter=key): ...

Keys have the form ``line@vN``; versions of one line replace each other.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dialoop.engine import Engine

__all__ = ["LoadedAdapters"]

log = logging.getLogger(__name__)


def _line(key: str) -> str:
    return key.partition("@v")[0]


class LoadedAdapters:
    """Reference-counted adapters of one engine (or engine pool). Thread-safe."""

    def __init__(self, engine: Engine, locate: Callable[[str], Path]) -> None:
        self._engine = engine
        self._locate = locate  # adapter key -> the file or folder the engine loads
        self._lock = threading.Lock()
        self._refs: Counter[str] = Counter()
        self._loaded: set[str] = set()
        self._current: dict[str, str] = {}  # line -> the version last asked for

    @contextmanager
    def use(self, key: str | None) -> Iterator[str | None]:
        """Hold ``key`` loaded for the duration of the block (None: the base model)."""
        if key is None:
            yield None
            return
        self.acquire(key)
        try:
            yield key
        finally:
            self.release(key)

    def acquire(self, key: str) -> None:
        """Load ``key`` if needed and hold a reference; retire other versions of its line."""
        with self._lock:
            if key not in self._loaded:
                self._engine.load_adapter(key, self._locate(key))
                self._loaded.add(key)
                log.info("adapter %s loaded", key)
            self._refs[key] += 1
            self._current[_line(key)] = key
            for old in [k for k in self._loaded if _line(k) == _line(key) and k != key]:
                self._unload_if_unused(old)

    def release(self, key: str) -> None:
        with self._lock:
            self._refs[key] -= 1
            assert self._refs[key] >= 0, f"adapter {key} released more often than acquired"
            if self._current.get(_line(key)) != key:
                self._unload_if_unused(key)

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded)

    def in_use(self, key: str) -> int:
        with self._lock:
            return self._refs[key]

    def _unload_if_unused(self, key: str) -> None:
        if self._refs[key] == 0 and key in self._loaded:
            self._engine.unload_adapter(key)
            self._loaded.discard(key)
            del self._refs[key]
            log.info("adapter %s unloaded (replaced)", key)
