"""The monitor's tests: the real all-MiniLM-L6-v2, remembered per text across the session
(the streams repeat a few dozen sentences), and a real SQLite file per test."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from dialoop.engine.embedding import default_embedder
from dialoop.monitor import Monitor, MonitorConfig
from dialoop.store import Database, open_database


class RememberingEmbedder:
    """The bundled encoder, each distinct text embedded once."""

    def __init__(self) -> None:
        self.inner = default_embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self._seen: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if new:
            for text, vector in zip(new, self.inner.embed(new), strict=True):
                self._seen[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._seen[t] for t in texts])


@pytest.fixture(scope="session")
def embedder() -> RememberingEmbedder:
    return RememberingEmbedder()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'monitor.db'}")
    yield database
    database.close()


@pytest.fixture
def make_monitor(db: Database, embedder: RememberingEmbedder):  # type: ignore[no-untyped-def]
    def make(config: MonitorConfig | None = None) -> Monitor:
        return Monitor(db, embedder, config or MonitorConfig())

    return make
