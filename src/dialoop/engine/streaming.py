"""Turning a stream of tokens into a stream of text, for the in-process engines.

Two things need care: a token can end in the middle of a UTF-8 character, and a
stop sequence can arrive split across tokens. :class:`TextStream` holds back
exactly as much text as could still turn out to be either, and :class:`TokenTrail`
releases per-token data (logprobs) with the text that shows its token.
"""

from __future__ import annotations

import codecs
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class TextStream:
    """Feed token bytes in, get text out that is safe to show, minus any stop sequence."""

    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._hold = max((len(s) for s in stop), default=1) - 1
        self._pending = ""
        self.stopped = False
        self.decoded = 0  # characters decoded so far, shown or held back
        self.shown = 0  # characters returned so far (the answer's length)

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the text that can be shown now."""
        new = self._decoder.decode(data)
        self.decoded += len(new)
        self._pending += new
        if self._stop:
            cut = min((i for s in self._stop if (i := self._pending.find(s)) >= 0), default=-1)
            if cut >= 0:
                self.stopped = True
                text, self._pending = self._pending[:cut], ""
                self.shown += len(text)
                return text
        keep = self._held_back()
        text = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(text):]
        self.shown += len(text)
        return text

    def flush(self) -> str:
        """The rest, at the end of generation."""
        if self.stopped:
            return ""
        tail = self._decoder.decode(b"", final=True)
        self.decoded += len(tail)
        text = self._pending + tail
        self._pending = ""
        self.shown += len(text)
        return text

    def _held_back(self) -> int:
        """Length of the longest tail of pending text that starts some stop sequence."""
        tail = self._pending[-self._hold:] if self._hold else ""
        for i in range(len(tail)):
            if any(s.startswith(tail[i:]) for s in self._stop):
                return len(tail) - i
        return 0


class TokenTrail(Generic[T]):
    """Per-token items, released once the text of their token has been shown.

    Each item spans the characters ``[start, end)`` of the decoded text (``TextStream.decoded``
    before and after feeding its token). :meth:`take` returns the items whose text is fully
    shown; after a stop sequence cut the text, :meth:`rest` returns the items that put at
    least a character into the answer (the stop sequence's own tokens are dropped).
    """

    def __init__(self) -> None:
        self._items: deque[tuple[int, int, T]] = deque()

    def add(self, item: T, start: int, end: int) -> None:
        self._items.append((start, end, item))

    def take(self, shown: int) -> tuple[T, ...]:
        out = []
        while self._items and self._items[0][1] <= shown:
            out.append(self._items.popleft()[2])
        return tuple(out)

    def rest(self, shown: int, *, stopped: bool) -> tuple[T, ...]:
        """Everything left at the end; after a stop, only what the answer shows a part of."""
        out = [item for start, end, item in self._items
               if not stopped or start < shown or end <= shown]
        self._items.clear()
        return tuple(out)
