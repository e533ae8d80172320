"""dialoop.transformer's public API is exactly its __all__, and a bad shape says how to fix it."""

from __future__ import annotations

import pytest

import dialoop.transformer as transformer
from dialoop.errors import ConfigError
from dialoop.transformer import TransformerConfig


def test_every_exported_name_exists_and_none_is_private() -> None:
    assert sorted(transformer.__all__) == sorted(set(transformer.__all__))
    for name in transformer.__all__:
        assert hasattr(transformer, name) and not name.startswith("_"), name


def test_a_width_that_heads_cannot_split_is_refused_with_a_fix() -> None:
    with pytest.raises(ConfigError, match="multiple of n_head.*try d_model=32"):
        TransformerConfig(vocab_size=10, d_model=30, n_head=4)
