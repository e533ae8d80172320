"""Which adapters are loaded into an engine, hot-swapped safely under concurrent use.

**Adapter references.** An engine loads *parts*, one LoRA adapter each, and a request
names a *stack* of loaded parts to apply together:

- a part is ``line@vN`` (version N of an adapter line: its lessons adapter) or
  ``line@vN#style`` (the style adapter of that same version: ``#`` and the part's name);
- a stack joins parts with ``+``: ``user:ann@v3+user:ann@v3#style`` applies both. A
  stack of one part is just the part.

Adapter names never contain ``+`` or ``#`` (:func:`dialoop.store.adapters.check_name`),
so the syntax is unambiguous. Every part applies at scale 1; LoRA deltas add
(``W + B₁A₁ + B₂A₂``), so the order of parts does not matter and :func:`stack_key` sorts
them: one stack, one key (KV states are keyed by it). A stack holds at most one version
of each line.

**Hot swaps.** The server answers on several threads at once while a consolidation run
may promote a new version of an adapter line (``global@v3`` replacing ``global@v2``). A
part is loaded on first use and the parts of versions it replaces are unloaded — but
only once no answer in progress still generates with them: each use holds a reference
per part, and a replaced part is unloaded when its last reference is released. The
parts of one version (``user:ann@v3`` and ``user:ann@v3#style``) do not replace each
other; they are retired together when another version of the line comes in.

    slots = LoadedAdapters(engine, locate=lambda part: store.locate(part, engine.kind))
    with slots.use("user:ann@v3+user:ann@v3#style") as key:   # loaded now if they were not
        for chunk in engine.stream(messages, params, adapter=key): ...
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dialoop.engine import Engine
from dialoop.errors import InvalidInputError

__all__ = ["PART_SEP", "STACK_SEP", "LoadedAdapters", "line_of", "split_part", "stack_key",
           "stack_parts", "version_of"]

log = logging.getLogger(__name__)

STACK_SEP = "+"  # between the parts of a stack
PART_SEP = "#"  # between a version and the name of one of its parts ("style")


def stack_parts(ref: str) -> tuple[str, ...]:
    """The parts ``ref`` names, sorted, each once: ``"b+a"`` → ``("a", "b")``."""
    parts = [p.strip() for p in ref.split(STACK_SEP)]
    if not all(parts):
        raise InvalidInputError(
            f"Invalid adapter reference {ref!r}: name parts joined with '+', "
            "e.g. 'user:ann@v3+user:ann@v3#style'."
        )
    unique = tuple(sorted(set(parts)))
    versions: dict[str, str] = {}
    for part in unique:
        if versions.setdefault(line_of(part), version_of(part)) != version_of(part):
            raise InvalidInputError(
                f"Invalid adapter reference {ref!r}: two versions of {line_of(part)!r}; "
                "a stack holds one version of each line."
            )
    return unique


def stack_key(parts: Iterable[str]) -> str:
    """The one reference of a stack of parts (sorted, each once)."""
    return STACK_SEP.join(sorted(set(parts)))


def split_part(part: str) -> tuple[str, str | None]:
    """``"user:ann@v3#style"`` → ``("user:ann@v3", "style")``; ``"global@v2"`` → ``(…, None)``."""
    version, sep, name = part.partition(PART_SEP)
    if sep and not name:
        raise InvalidInputError(f"Invalid adapter part {part!r}: name the part after '#'.")
    return version, name if sep else None


def version_of(part: str) -> str:
    """The version a part belongs to: ``"user:ann@v3#style"`` → ``"user:ann@v3"``."""
    return split_part(part)[0]


def line_of(part: str) -> str:
    """The line a part belongs to: ``"user:ann@v3#style"`` → ``"user:ann"``."""
    return part.partition("@v")[0].partition(PART_SEP)[0]


class LoadedAdapters:
    """Reference-counted adapter parts of one engine (or engine pool). Thread-safe."""

    def __init__(self, engine: Engine, locate: Callable[[str], Path]) -> None:
        self._engine = engine
        self._locate = locate  # part -> the file or folder the engine loads
        self._lock = threading.Lock()
        self._refs: Counter[str] = Counter()  # per part
        self._loaded: set[str] = set()  # parts
        self._current: dict[str, str] = {}  # line -> the version last asked for

    @contextmanager
    def use(self, ref: str | None) -> Iterator[str | None]:
        """Hold the parts of ``ref`` loaded for the duration of the block (None: the base
        model); yields the stack's key, the reference to pass to the engine."""
        if ref is None:
            yield None
            return
        key = self.acquire(ref)
        try:
            yield key
        finally:
            self.release(key)

    def acquire(self, ref: str) -> str:
        """Load the parts of ``ref`` if needed and hold a reference to each; retire other
        versions of their lines. Returns the stack's key."""
        parts = stack_parts(ref)
        with self._lock:
            self._load_all(parts)
            for part in parts:
                self._refs[part] += 1
                self._current[line_of(part)] = version_of(part)
            for old in [p for p in self._loaded if self._replaced(p)]:
                self._unload_if_unused(old)
        return stack_key(parts)

    def release(self, ref: str) -> None:
        with self._lock:
            for part in stack_parts(ref):
                self._refs[part] -= 1
                assert self._refs[part] >= 0, f"adapter {part} released more often than acquired"
                if self._replaced(part):
                    self._unload_if_unused(part)

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded)

    def in_use(self, part: str) -> int:
        with self._lock:
            return self._refs[part]

    def _load_all(self, parts: Iterable[str]) -> None:
        """Load the parts not loaded yet: all of them, or (on an error) none."""
        new: list[str] = []
        try:
            for part in parts:
                if part not in self._loaded:
                    self._engine.load_adapter(part, self._locate(part))
                    self._loaded.add(part)
                    new.append(part)
                    log.info("adapter %s loaded", part)
        except Exception:
            for part in new:
                self._engine.unload_adapter(part)
                self._loaded.discard(part)
            raise

    def _replaced(self, part: str) -> bool:
        return self._current.get(line_of(part), version_of(part)) != version_of(part)

    def _unload_if_unused(self, part: str) -> None:
        if self._refs[part] == 0 and part in self._loaded:
            self._engine.unload_adapter(part)
            self._loaded.discard(part)
            del self._refs[part]
            log.info("adapter %s unloaded (replaced)", part)
