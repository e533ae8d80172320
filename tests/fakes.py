"""Stand-ins for unit tests of code whose behaviour does not depend on what a model says.

:class:`FakeEngine` satisfies the :class:`~dialoop.engine.Engine` protocol without a
model: it renders messages as plain text and counts words as tokens, and it refuses
to generate — a test that reaches generation needs the real model (tests/integration).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dialoop.engine import Chunk, GenerationParams, Message, Usage


class FakeEngine:
    kind = "fake"
    name = "fake-model"

    def __init__(self, context_window: int = 2048) -> None:
        self.context_window = context_window
        self.adapters: dict[str, Path] = {}
        self.events: list[tuple[str, str]] = []  # ("load" | "unload", name), in order

    def render(self, messages: Sequence[Message]) -> str:
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"

    def escape(self, text: str) -> str:
        return text  # renders contents as they are: there are no control tokens

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages: Sequence[Message], params: GenerationParams, *,
               adapter: str | None = None, cache_scope: str | None = None,
               stop: threading.Event | None = None) -> Iterator[Chunk]:
        raise AssertionError("FakeEngine does not generate: this test needs the real model")

    def cancel(self) -> None:
        pass

    def load_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = path
        self.events.append(("load", name))

    def unload_adapter(self, name: str) -> None:
        self.adapters.pop(name, None)
        self.events.append(("unload", name))

    def close(self) -> None:
        pass


class HashEmbedder:
    """Deterministic stand-in sentence vectors (the same text, the same unit vector)."""

    name, dim = "hash", 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import hashlib

        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32)


class ScriptedEngine(FakeEngine):
    """A FakeEngine that answers: ``reply(prompt, adapter)`` gives the text of each answer,
    and every call is logged in ``asked`` as (prompt, adapter)."""

    def __init__(self, reply: Callable[[str, str | None], str]) -> None:
        super().__init__()
        self.reply = reply
        self.asked: list[tuple[str, str | None]] = []

    def stream(self, messages: Sequence[Message], params: GenerationParams, *,
               adapter: str | None = None, cache_scope: str | None = None,
               stop: threading.Event | None = None) -> Iterator[Chunk]:
        prompt = messages[-1]["content"]
        self.asked.append((prompt, adapter))
        text = self.reply(prompt, adapter)
        yield Chunk(text)
        yield Chunk("", finish_reason="stop",
                    usage=Usage(self.count_tokens(prompt), self.count_tokens(text), 0, 0.0, 0.0))
