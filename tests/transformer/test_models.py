"""Each architecture can learn: it overfits one tiny batch, and every weight takes part."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from dialoop.transformer import (
    IGNORE,
    Decoder,
    Encoder,
    EncoderDecoder,
    TransformerConfig,
    mask_tokens,
)


def _train(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor],
           steps: int = 80) -> tuple[float, float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = loss_fn().item()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
    return first, loss_fn().item()


def test_the_decoder_overfits_a_tiny_batch(tiny: TransformerConfig) -> None:
    model = Decoder(tiny)
    rows = torch.randint(9, 64, (4, 17))
    first, last = _train(model, lambda: model(rows[:, :-1], rows[:, 1:])[1])
    assert first > 3.5  # about ln 64: a random guess
    assert last < 0.2 * first


def test_the_encoder_overfits_masked_tokens_and_next_sentence_labels(
    tiny: TransformerConfig,
) -> None:
    model = Encoder(dataclasses.replace(tiny, position="learned"))
    ids = torch.randint(9, 64, (4, 16))
    ids[:, 0] = 4  # [CLS]
    inputs, labels = mask_tokens(ids, mask_id=6, special_ids=range(9), vocab_size=64,
                                 generator=torch.Generator().manual_seed(0), rate=0.3)
    segments = (torch.arange(16) >= 8).long().expand(4, 16)
    nsp = torch.tensor([0, 1, 0, 1])
    assert (labels != IGNORE).any()
    first, last = _train(model, lambda: model(inputs, segments, labels, nsp).loss)
    assert last < 0.2 * first
    out = model(inputs, segments, labels, nsp)
    assert torch.equal(out.nsp_logits.argmax(-1), nsp)


def test_the_encoder_decoder_overfits_a_copy_task(tiny: TransformerConfig) -> None:
    model = EncoderDecoder(dataclasses.replace(tiny, position="sinusoidal"))
    target = torch.randint(9, 64, (4, 12))
    target_in = torch.cat([torch.full((4, 1), 2), target[:, :-1]], dim=1)  # <bos> + shifted
    first, last = _train(model, lambda: model(target, target_in, target)[1])
    assert last < 0.2 * first


def test_one_step_changes_every_weight_of_every_architecture(tiny: TransformerConfig) -> None:
    ids = torch.randint(9, 64, (2, 8))
    models = {
        "decoder": (Decoder(tiny), lambda m: m(ids, ids)[1]),
        "encoder": (Encoder(tiny), lambda m: m(ids, torch.zeros_like(ids), ids,
                                                torch.tensor([0, 1])).loss),
        "encdec": (EncoderDecoder(tiny), lambda m: m(ids, ids, ids)[1]),
    }
    for name, (model, loss_fn) in models.items():
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        _train(model, lambda m=model, f=loss_fn: f(m), steps=1)
        unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
        assert not unchanged, f"{name}: {unchanged} did not train"
