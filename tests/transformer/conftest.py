"""Tiny configurations: every model here has a few thousand parameters and runs in ms."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from dialoop.transformer import TransformerConfig


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Fixed seeds; one thread, since on a busy 2-core machine two threads wait on each
    other at every small operation (ten times slower here)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny() -> TransformerConfig:
    """Two layers, two heads, width 32, the written-out attention."""
    return TransformerConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, d_model=32,
                             d_ff=64, position="rope")
