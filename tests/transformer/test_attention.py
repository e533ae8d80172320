"""softmax(QKᵀ/√d_k)V as written out: its weights, its agreement with torch's kernel, and
the causal mask that keeps a decoder from reading the future."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dialoop.transformer import (
    Decoder,
    Encoder,
    EncoderDecoder,
    MultiHeadAttention,
    TransformerConfig,
    causal_mask,
    scaled_dot_product_attention,
)


def _qkv(T: int = 7, S: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(2, 3, T, 8), torch.randn(2, 3, S, 8), torch.randn(2, 3, S, 8)


def test_the_causal_mask_blocks_exactly_the_future() -> None:
    assert causal_mask(4).tolist() == [
        [False, True, True, True],
        [False, False, True, True],
        [False, False, False, True],
        [False, False, False, False],
    ]


@pytest.mark.parametrize("masked", [False, True])
def test_attention_weights_are_non_negative_and_each_row_sums_to_one(masked: bool) -> None:
    q, k, v = _qkv()
    _, weights = scaled_dot_product_attention(q, k, v, causal_mask(7) if masked else None)
    assert weights.shape == (2, 3, 7, 7)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7))
    if masked:  # the future gets exactly zero weight
        assert (weights[..., causal_mask(7)] == 0).all()


def test_attention_matches_torch_without_a_mask() -> None:
    q, k, v = _qkv(T=5, S=9)  # cross-attention shapes: 5 queries, 9 keys
    out, _ = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)


def test_attention_matches_torch_with_the_causal_mask() -> None:
    q, k, v = _qkv()
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(7))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_attention_matches_torch_with_a_padding_mask() -> None:
    q, k, v = _qkv()
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[0, 5:] = True  # the first sequence ends with two padding tokens
    mask = padding[:, None, None, :]  # (B, 1, 1, S)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert (weights[0, :, :, 5:] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_the_fused_fast_path_computes_the_same_multi_head_attention(causal: bool) -> None:
    reference = MultiHeadAttention(32, 4, causal=causal)
    fast = MultiHeadAttention(32, 4, causal=causal, fast=True)
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 32)
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    torch.testing.assert_close(fast(x, padding=padding), reference(x, padding=padding),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast(x), reference(x), atol=1e-6, rtol=1e-5)


def _changed_positions(model_fn, ids: torch.Tensor, position: int) -> list[bool]:  # type: ignore[no-untyped-def]
    """For each position, whether its output changes when the token at ``position`` does."""
    other = ids.clone()
    other[0, position] = (ids[0, position] + 1) % 64
    with torch.no_grad():
        a, b = model_fn(ids), model_fn(other)
    return [not torch.allclose(a[0, t], b[0, t], atol=1e-6) for t in range(ids.size(1))]


@pytest.mark.parametrize("position", ["rope", "learned", "sinusoidal"])
def test_a_decoder_output_depends_on_its_own_and_earlier_tokens_only(
    tiny: TransformerConfig, position: str
) -> None:
    model = Decoder(dataclasses.replace(tiny, position=position)).eval()  # type: ignore[arg-type]
    ids = torch.randint(9, 64, (1, 10))
    for i in (0, 4, 9):
        changed = _changed_positions(lambda x: model(x)[0], ids, i)
        # positions < i never see token i; position i itself does (mask j > i, not j >= i)
        assert changed == [t >= i for t in range(10)], f"token {i} changed {changed}"


def test_an_encoder_decoder_writes_causally_but_reads_the_whole_source(
    tiny: TransformerConfig,
) -> None:
    model = EncoderDecoder(tiny).eval()
    source, target = torch.randint(9, 64, (1, 8)), torch.randint(9, 64, (1, 10))
    changed = _changed_positions(lambda t: model(source, t)[0], target, 6)
    assert changed == [t >= 6 for t in range(10)]
    # the last source token reaches every target position through cross-attention (the
    # first 8 target positions are compared, one per source position the helper loops over)
    changed = _changed_positions(lambda s: model(s, target)[0][:, :8], source, 7)
    assert all(changed)


def test_an_encoder_sees_both_directions(tiny: TransformerConfig) -> None:
    model = Encoder(dataclasses.replace(tiny, position="learned")).eval()
    ids = torch.randint(9, 64, (1, 10))
    assert all(_changed_positions(lambda x: model(x).mlm_logits, ids, 9))
