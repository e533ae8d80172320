"""`dialoop transformer attention`: the maps of a real (tiny, random) Llama folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.errors import InvalidInputError
from dialoop.transformer.maps import attention_maps, plot_attention

TEXT = "The cat sat on the mat because it was warm."


def test_maps_are_causal_distributions_per_layer_and_head(
        tiny_model_dir: Path, dialoop_home: Path) -> None:
    maps = attention_maps(str(tiny_model_dir), TEXT, home=dialoop_home)
    layers, heads, t, s = maps.weights.shape
    assert (layers, heads) == (2, 4) and t == s == len(maps.tokens) > 5
    assert (maps.weights >= 0).all()
    assert torch.allclose(maps.weights.sum(-1), torch.ones(layers, heads, t), atol=1e-5)
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)  # j > i
    assert maps.weights[..., future].abs().max() == 0  # no token looks ahead
    assert torch.allclose(maps.of(-1, None), maps.weights[1].mean(0))
    with pytest.raises(InvalidInputError, match="2 layers"):
        maps.of(5, None)
    with pytest.raises(InvalidInputError, match="4 heads"):
        maps.of(0, 9)


def test_plot_writes_a_png(tiny_model_dir: Path, dialoop_home: Path, tmp_path: Path) -> None:
    maps = attention_maps(str(tiny_model_dir), TEXT, home=dialoop_home)
    out = plot_attention(maps, tmp_path / "a.png", layer=0, head=1)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_cli_draws_and_refuses_a_missing_head(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "attn.png"
    ok = CliRunner().invoke(cli, ["transformer", "attention", TEXT, "--model",
                                  str(tiny_model_dir), "--layer", "1", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert out.is_file() and "layer 1 of 2, mean of 4 heads" in ok.output
    bad = tmp_path / "bad.png"
    refused = CliRunner().invoke(cli, ["transformer", "attention", TEXT, "--model",
                                       str(tiny_model_dir), "--head", "7", "-o", str(bad)])
    assert refused.exit_code == 2 and "4 heads" in refused.output and not bad.exists()
