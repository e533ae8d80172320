"""KTO on ratings: the loss is the paper's, its gradient is right, and training moves the
policy towards thumbs-up answers and away from thumbs-down ones (tiny random model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from dialoop.errors import InvalidInputError
from dialoop.learn.consolidate import wrap_top_blocks
from dialoop.learn.kto import (
    StyleConfig,
    _anchor_items,
    _anchor_kl,
    _batch_loss,
    _prepare,
    _top_blocks,
    class_weights,
    kl_estimate,
    kto_loss,
    log_ratios,
    train_style,
)
from dialoop.learn.ratings import Rated

RATED = [
    Rated("Is my card on its way?", "Yes.", 1),
    Rated("How do I top up?", "In the app.", 1),
    Rated("Can I cancel a transfer?", "Well, there are many things to consider here. First, "
          "transfers are complicated. Second, it depends on many factors.", -1),
    Rated("What is the fee?", "Fees are a topic with a long history. Banks charge them. "
          "Customers dislike them. Some are hidden.", -1),
    Rated("Where is my refund?", "Tomorrow.", 1),
    Rated("Why was my card declined?", "There could be a great many reasons for this, and "
          "it is important to understand each one of them in detail.", -1),
]


@pytest.fixture
def float64(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Everything in float64, for finite differences. transformers computes RMSNorm in
    float32 (for half precision); that cast would put float32 rounding into the finite
    differences, so here it keeps the input's dtype."""
    from transformers.models.llama import modeling_llama

    def rms_norm(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)
                                             + self.variance_epsilon)

    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_norm)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


# -- the objective ------------------------------------------------------------------------


def test_loss_value_is_the_papers_formula_on_hand_computed_numbers() -> None:
    policy = torch.tensor([-10.0, -12.0], dtype=torch.float64)
    reference = torch.tensor([-11.0, -11.0], dtype=torch.float64)  # log-ratios +1 and -1
    desirable = torch.tensor([True, False])
    loss = kto_loss(policy, reference, desirable, 0.5, beta=0.1, weights=(2.0, 0.5))
    # desirable:   2.0 · (1 − σ(0.1 · (1 − 0.5)))    = 2 · (1 − σ(0.05)) = 0.97500521
    # undesirable: 0.5 · (1 − σ(0.1 · (0.5 − (−1)))) = 0.5 · (1 − σ(0.15)) = 0.23128508
    assert loss.item() == pytest.approx((0.9750052070315793 + 0.2312850773281252) / 2, abs=1e-12)


def test_reference_point_is_the_clamped_detached_mean_log_ratio() -> None:
    ref = torch.tensor([-6.0, -8.0])
    policy = torch.tensor([-5.0, -7.0], requires_grad=True)  # log-ratios 1, 1
    z = kl_estimate(policy, ref)
    assert z.item() == 1.0 and z.grad_fn is None and not z.requires_grad
    assert kl_estimate(torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -5.0])).item() == 0.0


def test_class_weights_balance_the_classes_with_mean_weight_one() -> None:
    lambda_d, lambda_u = class_weights(1, 3)
    assert (lambda_d, lambda_u) == pytest.approx((2.0, 2 / 3))
    assert (lambda_d * 1 + lambda_u * 3) / 4 == pytest.approx(1.0)
    lambda_d, lambda_u = class_weights(10, 30, ratio=4 / 3)
    assert lambda_d * 10 / (lambda_u * 30) == pytest.approx(4 / 3)
    assert class_weights(0, 5) == (1.0, 1.0)  # one class: nothing to balance


def test_gradient_of_the_loss_matches_autograd_and_the_closed_form() -> None:
    torch.manual_seed(0)
    policy = (torch.randn(6, dtype=torch.float64) * 5 - 20).requires_grad_()
    reference = (torch.randn(6, dtype=torch.float64) * 5 - 20).requires_grad_()
    desirable = torch.tensor([True, False, True, True, False, False])
    z = torch.tensor(0.7, dtype=torch.float64)
    beta, weights = 0.3, (1.5, 0.75)

    def f(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return kto_loss(p, r, desirable, z, beta=beta, weights=weights)

    assert torch.autograd.gradcheck(f, (policy, reference), eps=1e-6, atol=1e-8)
    f(policy, reference).backward()
    # d loss / d policy_i = −λ_D β σ'(β(ρ_i − z)) / B, or +λ_U β σ'(β(z − ρ_i)) / B
    rho = (policy - reference).detach()
    s_d, s_u = torch.sigmoid(beta * (rho - z)), torch.sigmoid(beta * (z - rho))
    expected = torch.where(desirable, -weights[0] * beta * s_d * (1 - s_d),
                           weights[1] * beta * s_u * (1 - s_u)) / len(rho)
    assert torch.allclose(policy.grad, expected, atol=1e-12)
    assert torch.allclose(reference.grad, -expected, atol=1e-12)


def test_gradient_end_to_end_through_a_tiny_model(tiny_model, hf_tokenizer, float64  # type: ignore[no-untyped-def]
                                                  ) -> None:
    from peft.tuners.lora import LoraLayer

    config = StyleConfig(rank=2, alpha=2, layers=1, batch_size=4, sft_weight=0.5)
    peft, first = wrap_top_blocks(tiny_model.double(), rank=config.rank, alpha=config.alpha,
                                  layers=config.layers)
    torch.manual_seed(1)
    for module in peft.modules():  # LoRA B starts at zero; make both matter
        if isinstance(module, LoraLayer):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.5)
    items = _prepare(peft, hf_tokenizer, RATED[:4], config, first)
    weights = class_weights(2, 2)
    targets = [p for n, p in peft.named_parameters() if p.requires_grad
               and "layers.2.self_attn.v_proj" in n]
    assert len(targets) == 2  # lora_A and lora_B of one projection

    class Loss(torch.nn.Module):  # functional_call swaps parameters of a module's forward
        def __init__(self) -> None:
            super().__init__()
            self.peft = peft

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return _batch_loss(self.peft, items, config, weights, z=z)[0]

    wrapper = Loss()
    with _top_blocks(peft.get_base_model(), first):
        _, z = _batch_loss(peft, items, config, weights)  # the reference point, then fixed
        assert z.dtype == torch.float64

        # (names inside _top_blocks, which renumbers the blocks it keeps)
        names = [n for t in targets for n, p in wrapper.named_parameters() if p is t]

        def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(wrapper, dict(zip(names, (a, b), strict=True)),
                                              (z,))

        a, b = (t.detach().clone().requires_grad_() for t in targets)
        assert torch.autograd.gradcheck(loss, (a, b), eps=1e-6, atol=1e-7)


# -- training -------------------------------------------------------------------------------


def _log_ratios(peft, tokenizer, rated: list[Rated]) -> list[float]:  # type: ignore[no-untyped-def]
    """log πθ(y|x) − log πref(y|x) of each answer, with the whole model (no shortcut)."""
    from dialoop.train.chat_data import encode_chat

    out = []
    for r in rated:
        enc = encode_chat(tokenizer, [{"role": "user", "content": r.question},
                                      {"role": "assistant", "content": r.answer}], train_on="last")
        ids, labels = torch.tensor([enc.input_ids]), torch.tensor(enc.labels[1:])

        def logp(ids: torch.Tensor = ids, labels: torch.Tensor = labels) -> float:
            logits = peft(input_ids=ids).logits[0, :-1]  # (T-1, vocab): position t → t+1
            picked = torch.log_softmax(logits, -1)[labels != -100].gather(
                1, labels[labels != -100].unsqueeze(1))
            return float(picked.sum())

        with torch.no_grad():
            policy = logp()
            with peft.disable_adapter():
                reference = logp()
        out.append(policy - reference)
    return out


@pytest.mark.parametrize("sft_weight", [0.0, 0.5])
def test_training_raises_liked_answers_and_lowers_disliked_ones(tiny_model, hf_tokenizer,  # type: ignore[no-untyped-def]
                                                               sft_weight: float) -> None:
    config = StyleConfig(rank=4, alpha=8, layers=2, epochs=8, batch_size=3, lr=1e-2, beta=1.0,
                         sft_weight=sft_weight)
    peft, result = train_style(tiny_model, hf_tokenizer, RATED, config)
    assert result.changed  # trl's smoke test: the trainable parameters moved
    assert result.steps == 16 and len(result.losses) == 16 and len(result.kl) == 16
    assert (result.desirable, result.undesirable) == (3, 3)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    lora = {n for n, p in peft.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    assert not any(".layers.0." in n for n in lora)  # below the top 2 blocks: untouched
    ratios = _log_ratios(peft, hf_tokenizer, RATED)
    for r, rho in zip(RATED, ratios, strict=True):
        assert (rho > 0) == r.desirable, (r.answer, rho)


def test_nothing_rated_or_a_bad_config_is_refused(tiny_model, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match="no bare ratings"):
        train_style(tiny_model, hf_tokenizer, [], StyleConfig())
    with pytest.raises(InvalidInputError, match="batch size at least 2"):
        StyleConfig(batch_size=1)


ANCHORS = [("What is the capital of France?", "The capital of France is Paris."),
           ("Name a fruit that is yellow.", "A banana is yellow.")]


def _anchor_drift(peft, tokenizer, config: StyleConfig) -> float:  # type: ignore[no-untyped-def]
    base = peft.get_base_model()
    first = max(0, base.config.num_hidden_layers - config.layers)
    with torch.no_grad(), _top_blocks(base, first):
        return float(_anchor_kl(peft, _anchor_items(peft, tokenizer, ANCHORS, config, first)))


def test_anchors_keep_the_base_models_distributions_where_no_rating_speaks(
        tiny_model, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    config = StyleConfig(rank=4, alpha=8, layers=2, epochs=8, batch_size=3, lr=1e-2, beta=1.0,
                         anchor_weight=0.0)
    free, _ = train_style(tiny_model, hf_tokenizer, RATED, config)
    drift_free = _anchor_drift(free, hf_tokenizer, config)
    tiny_model = free.unload()
    anchored_config = StyleConfig(**{**config.__dict__, "anchor_weight": 10.0})
    anchored, _ = train_style(tiny_model, hf_tokenizer, RATED, anchored_config, anchors=ANCHORS)
    drift = _anchor_drift(anchored, hf_tokenizer, anchored_config)
    assert 0 <= drift < drift_free / 2, (drift, drift_free)
    # It still learns the ratings.
    ratios = log_ratios(anchored, hf_tokenizer, RATED, anchored_config)
    assert [rho > 0 for rho in ratios] == [r.desirable for r in RATED]


def test_log_ratios_are_the_full_models_per_token(tiny_model, hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    from dialoop.train.chat_data import encode_chat

    config = StyleConfig(rank=4, alpha=8, layers=2, epochs=2, batch_size=3, lr=1e-2)
    peft, _ = train_style(tiny_model, hf_tokenizer, RATED, config)
    tokens = [sum(x != -100 for x in encode_chat(
        hf_tokenizer, [{"role": "user", "content": r.question},
                       {"role": "assistant", "content": r.answer}], train_on="last").labels[1:])
        for r in RATED]
    want = [rho / n for rho, n in zip(_log_ratios(peft, hf_tokenizer, RATED), tokens,
                                      strict=True)]
    got = log_ratios(peft, hf_tokenizer, RATED, config)
    assert got == pytest.approx(want, abs=1e-4)
