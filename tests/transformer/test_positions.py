"""Positions: the sinusoidal table is the formula, and RoPE makes q·k depend on the
distance between two positions only."""

from __future__ import annotations

import math

import torch

from dialoop.transformer.positions import Rotary, sinusoidal_table


def test_the_sinusoidal_table_follows_the_formula() -> None:
    table = sinusoidal_table(50, 16)
    pos, i = 37, 3
    assert math.isclose(table[pos, 2 * i], math.sin(pos / 10000 ** (2 * i / 16)), abs_tol=1e-5)
    assert math.isclose(table[pos, 2 * i + 1], math.cos(pos / 10000 ** (2 * i / 16)), abs_tol=1e-5)


def test_rope_scores_depend_only_on_the_offset_between_positions() -> None:
    rope = Rotary(block_size=32, head_dim=8)
    q, k = torch.randn(8), torch.randn(8)

    def score(i: int, j: int) -> float:
        qs = rope(q.expand(1, 1, 32, 8).clone())[0, 0, i]
        ks = rope(k.expand(1, 1, 32, 8).clone())[0, 0, j]
        return float(qs @ ks)

    assert math.isclose(score(5, 2), score(20, 17), rel_tol=1e-4, abs_tol=1e-5)
    assert not math.isclose(score(5, 2), score(5, 4), rel_tol=1e-3)
