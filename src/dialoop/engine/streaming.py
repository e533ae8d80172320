"""Turning a stream of tokens into a stream of text, for the in-process engines.

Two things need care: a token can end in the middle of a UTF-8 character, and a
stop sequence can arrive split across tokens. :class:`TextStream` holds back
exactly as much text as could still turn out to be either.
"""

from __future__ import annotations

import codecs


class TextStream:
    """Feed token bytes in, get text out that is safe to show, minus any stop sequence."""

    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._hold = max((len(s) for s in stop), default=1) - 1
        self._pending = ""
        self.stopped = False

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the text that can be shown now."""
        self._pending += self._decoder.decode(data)
        if self._stop:
            cut = min((i for s in self._stop if (i := self._pending.find(s)) >= 0), default=-1)
            if cut >= 0:
                self.stopped = True
                text, self._pending = self._pending[:cut], ""
                return text
        keep = self._held_back()
        text = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(text):]
        return text

    def flush(self) -> str:
        """The rest, at the end of generation."""
        if self.stopped:
            return ""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return text

    def _held_back(self) -> int:
        """Length of the longest tail of pending text that starts some stop sequence."""
        tail = self._pending[-self._hold:] if self._hold else ""
        for i in range(len(tail)):
            if any(s.startswith(tail[i:]) for s in self._stop):
                return len(tail) - i
        return 0
