"""Ratings teach: a *style* adapter trained on thumbs up and down with KTO.

A rating is a binary label on one answer, not a pair: KTO (Kahneman–Tversky
Optimization; Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic
Optimization"; TRL's ``KTOTrainer``) learns from exactly that. Per rated answer y to
question x, with the base model as the reference policy πref (the adapter disabled):

    ρ(x, y) = log πθ(y|x) − log πref(y|x)        summed over the answer's tokens
    z       = max(0, KL̂),  KL̂ = mean ρ(x, y′) over mismatched pairs, detached
    loss    = λ_D · (1 − σ(β·(ρ − z)))            y desirable (thumbs up)
              λ_U · (1 − σ(β·(z − ρ)))            y undesirable (thumbs down)

i.e. the reward is r = β·ρ and the reference point z_ref = β·z, as in the paper (eq. 8)
and TRL. The reference point is the policy's KL from the base, estimated per batch from
answers paired with *another* question (x_i, y_j): an answer only counts as a gain once
it beats what the adapter does to text in general. It is detached, as in the paper, so
it moves the point gains and losses are measured from but passes no gradient.

λ_D and λ_U weigh the two classes: the paper recommends λ_D·n_D / (λ_U·n_U) ∈ [1, 4/3];
:func:`class_weights` makes that ratio ``desirable_ratio`` (1 by default) and keeps the
mean weight 1. ``sft_weight`` adds the SFT loss (mean token NLL) on desirable answers.

Training reuses consolidation's technique (:func:`dialoop.learn.consolidate.train_lora`)
and its helpers: LoRA on the top ``layers`` blocks only, each sequence's hidden state at
the first adapted block computed once and cached, logits only where there is a label.
Each item's mismatched pair is fixed at the start (the next answer in a seeded shuffle,
as TRL fixes it when it builds its KL dataset), so its hidden state is cached too, and
the reference log-probs of both are computed once. Per step the policy's log-probs of
the mismatched pairs are recomputed without gradient for the KL estimate.

Anchors keep the rest in place: the style adapter serves every message, so each step
also adds ``anchor_weight`` × the mean per-token KL(πref ‖ πθ) on the base model's own
answers to a few unrelated prompts (its distributions, not just its strings; the gate
measures locality on other prompts).

The style adapter serves its line's user (``line@vN#style``) on messages like the ones
they rated (its own router, :meth:`dialoop.learn.loop.LearningLoop.style_routes`),
stacked with the lessons adapter where that router sends the message to a lesson (see
:mod:`dialoop.engine.adapters`). Trained alone on ratings of one kind of message, it
moved the answers to every kind (docs/learning.md, "Ratings teach").
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from dialoop.errors import InvalidInputError
from dialoop.learn.consolidate import (
    Example,
    Progress,
    _encode,
    _forward,
    _hidden_at,
    _Item,
    _top_blocks,
    adamw_with_warmup,
    wrap_top_blocks,
)
from dialoop.learn.ratings import Rated

__all__ = ["StyleConfig", "StyleResult", "class_weights", "kl_estimate", "kto_loss",
           "log_ratios", "train_style"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleConfig:
    """How the style adapter is trained (LoRA shape and KTO's β, λ, SFT term)."""

    rank: int = 16
    alpha: int = 32
    layers: int = 4  # LoRA on the top this-many blocks
    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 16
    max_answer_tokens: int = 96  # an answer's length is part of its style: keep it whole
    beta: float = 1.0  # 0.1 (TRL's default) moved unrelated answers far more, for no gain
    desirable_ratio: float = 1.0  # λ_D·n_D / (λ_U·n_U); the paper: between 1 and 4/3
    sft_weight: float = 0.0  # SFT loss on desirable answers, added with this weight
    anchor_weight: float = 10.0  # KL(base ‖ adapter) on the anchors' answers, this weight
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rank < 1 or self.layers < 1 or self.epochs < 1 or self.batch_size < 2:
            raise InvalidInputError(
                "rank, layers and epochs must be at least 1, and the batch size at least 2 "
                "(the KL estimate pairs each answer with another question)."
            )
        if (self.beta <= 0 or self.desirable_ratio <= 0 or self.sft_weight < 0
                or self.anchor_weight < 0):
            raise InvalidInputError("beta and desirable_ratio must be positive, sft_weight "
                                    "and anchor_weight ≥ 0.")


@dataclass
class StyleResult:
    steps: int
    desirable: int
    undesirable: int
    weights: tuple[float, float]  # λ_D, λ_U
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # per step
    kl: list[float] = field(default_factory=list)  # per step: the reference point z
    changed: bool = False  # some trainable parameter moved

    def to_dict(self) -> dict[str, Any]:
        tenth = max(1, len(self.losses) // 10)

        def mean(xs: list[float]) -> float | None:
            return round(sum(xs) / len(xs), 4) if xs else None

        return {"steps": self.steps, "desirable": self.desirable,
                "undesirable": self.undesirable,
                "weights": [round(w, 4) for w in self.weights],
                "seconds": round(self.seconds, 2),
                "loss_start": mean(self.losses[:tenth]), "loss_end": mean(self.losses[-tenth:]),
                "kl_end": mean(self.kl[-tenth:])}


# -- the objective ------------------------------------------------------------------------


def kl_estimate(policy_logps: torch.Tensor, reference_logps: torch.Tensor) -> torch.Tensor:
    """z = max(0, mean log-ratio) of a batch of mismatched pairs (summed log-probs, (B,)),
    detached."""
    return (policy_logps - reference_logps).mean().clamp(min=0).detach()


def kto_loss(
    policy_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    desirable: torch.Tensor,
    z: torch.Tensor | float,
    *,
    beta: float,
    weights: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """The mean KTO loss of a batch: (B,) summed log-probs of each answer under the policy
    and the reference, (B,) bool which are desirable, and the reference point ``z``."""
    lambda_d, lambda_u = weights
    rho = policy_logps - reference_logps  # (B,)
    z = torch.as_tensor(z, dtype=rho.dtype).detach()
    gain = lambda_d * (1 - torch.sigmoid(beta * (rho - z)))
    loss = lambda_u * (1 - torch.sigmoid(beta * (z - rho)))
    return torch.where(desirable, gain, loss).mean()


def class_weights(n_desirable: int, n_undesirable: int, ratio: float = 1.0
                  ) -> tuple[float, float]:
    """(λ_D, λ_U) with λ_D·n_D = ratio·λ_U·n_U and a mean weight of 1 per example."""
    if n_desirable == 0 or n_undesirable == 0:
        return 1.0, 1.0
    total = n_desirable + n_undesirable
    lambda_u = total / ((ratio + 1) * n_undesirable)
    return ratio * total / ((ratio + 1) * n_desirable), lambda_u


# -- training ---------------------------------------------------------------------------------


def train_style(
    model: Any,
    tokenizer: Any,
    rated: Sequence[Rated],
    config: StyleConfig,
    progress: Progress | None = None,
    anchors: Sequence[tuple[str, str]] = (),
) -> tuple[Any, StyleResult]:
    """Wrap ``model`` in a fresh LoRA adapter and train it with KTO on ``rated`` answers
    against ``model`` itself (the adapter disabled). Returns the PEFT model (save it with
    ``save_pretrained``) and what happened.

    ``anchors`` are (prompt, the base model's answer) pairs about anything else: each step
    adds ``config.anchor_weight`` times the mean per-token KL(πref ‖ πθ) over a batch of
    them, so the adapter keeps the base model's distributions where no rating speaks
    (the style part serves every message: what it was not asked to change must stay)."""
    if not rated:
        raise InvalidInputError("Nothing to train on: there are no bare ratings.")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    peft, first = wrap_top_blocks(model, rank=config.rank, alpha=config.alpha,
                                  layers=config.layers)
    start = time.perf_counter()
    items = _prepare(peft, tokenizer, rated, config, first)
    anchored = _anchor_items(peft, tokenizer, anchors, config, first)
    n_good = sum(r.desirable for r in rated)
    if n_good in (0, len(rated)):
        log.warning("all %d ratings are %s: KTO can only push one way", len(rated),
                    "good" if n_good else "bad")
    weights = class_weights(n_good, len(rated) - n_good, config.desirable_ratio)
    params = [p for p in peft.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    total = math.ceil(len(items) / config.batch_size) * config.epochs
    optimizer, schedule = adamw_with_warmup(params, lr=config.lr, total=total)
    result = StyleResult(total, n_good, len(rated) - n_good, weights)
    peft.train()
    with _top_blocks(peft.get_base_model(), first):
        for _ in range(config.epochs):
            order = list(range(len(items)))
            rng.shuffle(order)
            for b in range(0, len(order), config.batch_size):
                batch = [items[i] for i in order[b: b + config.batch_size]]
                loss, z = _batch_loss(peft, batch, config, weights)
                if anchored and config.anchor_weight:
                    start_at = (len(result.losses) * config.batch_size) % len(anchored)
                    chunk = (anchored + anchored)[start_at: start_at + config.batch_size]
                    loss = loss + config.anchor_weight * _anchor_kl(peft, chunk)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                result.losses.append(float(loss.detach()))
                result.kl.append(float(z))
                if progress is not None:
                    progress(len(result.losses), total)
    peft.eval()
    result.changed = any(not torch.equal(p, q) for p, q in zip(params, before, strict=True))
    result.seconds = time.perf_counter() - start
    log.info("style adapter: %d ratings (%d good), %d steps in %.1f s, loss %s → %s",
             len(rated), n_good, total, result.seconds, result.to_dict()["loss_start"],
             result.to_dict()["loss_end"])
    return peft, result


def log_ratios(peft: Any, tokenizer: Any, rated: Sequence[Rated], config: StyleConfig
               ) -> list[float]:
    """Per answer, how far the adapter moved it from the base model: the mean over its
    tokens of log πθ − log πref (per token, so that long and short answers compare).
    ``peft`` is a trained style adapter (:func:`train_style`) with the same ``config``."""
    base = peft.get_base_model()
    first = max(0, base.config.num_hidden_layers - config.layers)
    items = [_encode(tokenizer, Example("rating", r.question, r.answer),
                     config.max_answer_tokens) for r in rated]
    out: list[float] = []
    with torch.no_grad():
        for item in items:
            item.hidden = _hidden_at(base, item, first)
        with _top_blocks(base, first):
            for b in range(0, len(items), config.batch_size):
                hidden = [i.hidden for i in items[b: b + config.batch_size]]
                labels = [i.labels for i in items[b: b + config.batch_size]]
                policy, counts = _answer_logps(peft, hidden, labels)  # (B,), (B,)
                with peft.disable_adapter():
                    reference, _ = _answer_logps(peft, hidden, labels)
                out += ((policy - reference) / counts.clamp(min=1)).tolist()
    return out


@dataclass
class _Rated:
    """A rated answer ready to train: consolidation's item (its ``rejected`` half holds the
    mismatched pair) and its label."""

    item: _Item  # .ref: (2,) reference log-probs of the answer and the mismatched pair
    desirable: bool


def _prepare(peft: Any, tokenizer: Any, rated: Sequence[Rated], config: StyleConfig,
             first: int) -> list[_Rated]:
    """Encode each answer with its mismatched pair; cache hidden states and reference
    log-probs (the base model: the adapter disabled)."""
    order = list(range(len(rated)))
    random.Random(config.seed).shuffle(order)
    other = {i: rated[order[(k + 1) % len(order)]].answer for k, i in enumerate(order)}
    items = [_Rated(_encode(tokenizer, Example("rating", r.question, r.answer,
                                               rejected=other[i]), config.max_answer_tokens),
                    r.desirable)
             for i, r in enumerate(rated)]
    base = peft.get_base_model()
    with torch.no_grad():
        for x in items:
            x.item.hidden = _hidden_at(base, x.item, first)  # and .rejected_hidden
        with _top_blocks(base, first), peft.disable_adapter():
            for b in range(0, len(items), config.batch_size):
                batch = [x.item for x in items[b: b + config.batch_size]]
                logps, _ = _answer_logps(  # (2B,): the answers, then the mismatched pairs
                    peft, [i.hidden for i in batch] + [i.rejected_hidden for i in batch],
                    [i.labels for i in batch] + [i.rejected_labels for i in batch])
                for item, ref in zip(batch, logps.view(2, len(batch)).T, strict=True):
                    item.ref = ref  # (2,)
    return items


def _anchor_items(peft: Any, tokenizer: Any, anchors: Sequence[tuple[str, str]],
                  config: StyleConfig, first: int) -> list[_Item]:
    items = [_encode(tokenizer, Example("anchor", q, a), config.max_answer_tokens)
             for q, a in anchors if a.strip()]
    with torch.no_grad():
        for item in items:
            item.hidden = _hidden_at(peft.get_base_model(), item, first)
    return items


def _anchor_kl(peft: Any, batch: Sequence[_Item]) -> torch.Tensor:
    """Mean per-token KL(πref ‖ πθ) over the answers of ``batch`` (top blocks only)."""
    hidden, labels = [i.hidden for i in batch], [i.labels for i in batch]
    logits, _, _ = _forward(peft, hidden, labels)  # (N, vocab)
    with torch.no_grad(), peft.disable_adapter():
        reference, _, _ = _forward(peft, hidden, labels)
    ref = torch.log_softmax(reference.float(), -1)
    return (ref.exp() * (ref - torch.log_softmax(logits.float(), -1))).sum(-1).mean()


def _answer_logps(peft: Any, hidden: list[Any], labels: list[list[int]]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) summed log-probs of each sequence's labelled tokens, and (B,) how many there are.
    Runs the top blocks only: call inside ``_top_blocks``."""
    logits, target, rows = _forward(peft, hidden, labels)  # (N, vocab), (N,), (N,)
    dtype = torch.promote_types(logits.dtype, torch.float32)  # float32 at least, float64 kept
    token_logps = torch.log_softmax(logits.to(dtype), -1).gather(1, target.unsqueeze(1))
    sums = torch.zeros(len(hidden), dtype=dtype).index_add(0, rows, token_logps.squeeze(1))
    ones = torch.ones(len(rows), dtype=dtype)
    counts = torch.zeros(len(hidden), dtype=dtype).index_add(0, rows, ones)
    return sums, counts


def _batch_loss(peft: Any, batch: Sequence[_Rated], config: StyleConfig,
                weights: tuple[float, float], z: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """KTO loss of a batch (plus the SFT term), and the reference point used. ``z`` fixes
    the reference point instead of estimating it (a gradient check needs that)."""
    items = [x.item for x in batch]
    if z is None:
        with torch.no_grad():
            kl_policy, _ = _answer_logps(peft, [i.rejected_hidden for i in items],
                                         [i.rejected_labels for i in items])
        z = kl_estimate(kl_policy, torch.stack([i.ref[1] for i in items]).to(kl_policy.dtype))
    policy, counts = _answer_logps(peft, [i.hidden for i in items], [i.labels for i in items])
    reference = torch.stack([i.ref[0] for i in items]).to(policy.dtype)
    desirable = torch.tensor([x.desirable for x in batch])
    loss = kto_loss(policy, reference, desirable, z, beta=config.beta, weights=weights)
    if config.sft_weight and bool(desirable.any()):
        loss = loss - config.sft_weight * policy[desirable].sum() / counts[desirable].sum()
    return loss, z
