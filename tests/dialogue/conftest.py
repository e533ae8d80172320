"""Fixtures for the dialogue tests: the store_support example, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.dialogue.domain import Domain, load_domain

STORE = Path(__file__).resolve().parents[2] / "examples" / "store_support"


@pytest.fixture(scope="session")
def store_domain() -> Domain:
    return load_domain(STORE / "domain.yaml")


@pytest.fixture(scope="session")
def store_dir() -> Path:
    return STORE
