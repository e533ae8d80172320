"""Fixtures of the interop tests."""

from __future__ import annotations

import pytest

from dialoop.engine.embedding import Embedder, default_embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The bundled sentence encoder: intents are told apart as they are when serving."""
    return default_embedder()
