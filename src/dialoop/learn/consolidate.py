"""The slow path: train a LoRA adapter on the active lessons, from the base model.

A consolidation is a function of the *active* lessons: it always starts from the
base weights, so a forgotten lesson is gone from the next adapter exactly, not
merely diluted.

The adapter is *scoped*: it serves behind a router (``LearningLoop.adapter_for``)
that sends it only messages matching one of its lessons, and everything else to the
base model. So the adapter never has to leave unrelated prompts alone by itself —
the router does that exactly — and training can spend everything on making the
lessons hold, in every wording the router lets through. The training set:

- **lessons**: each correction's question → its answer (loss on the answer only),
  plus two rewordings from templates (a third is held out for the gate);
- **names**: the names a lesson asks about, alone ("Acme Biotech?") → its answer,
  when no other lesson asks about the same names: a reworded question the router
  sends here then finds the answer through the names, whatever its other words
  (measured: generalization 0.67 → 0.88 on 20 lessons);
- **preferences**: chosen vs rejected response, with a DPO loss against the base
  model (plus the SFT loss on the chosen one);
- **replay** (``learn_replay``, off by default): unrelated prompts with the base
  model's own answers.

(Before the router, the adapter answered everything, and this set had negatives —
the question about another name, with an unlikelihood loss — and 30 replay prompts;
locality still fell to 0.58 on 20 lessons. docs/learning.md has the measurements.)

Why training is fast enough on a CPU: LoRA goes only on the top ``layers``
transformer blocks. Everything below them is frozen and unchanged, so each
example's hidden state at the first adapted block is computed once, cached, and
training runs only the top blocks. Logits are computed only where there is a label
(the vocabulary projection is a fifth of the model). Both are exact, not
approximations.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from dialoop.engine import Message
from dialoop.errors import InvalidInputError
from dialoop.learn.memory import named
from dialoop.train.chat_data import IGNORE, encode_chat

__all__ = [
    "Example",
    "TrainConfig",
    "TrainResult",
    "build_examples",
    "paraphrases",
    "train_lora",
]

log = logging.getLogger(__name__)

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
Progress = Callable[[int, int], None]  # (step, total steps)


@dataclass(frozen=True)
class TrainConfig:
    rank: int = 32
    alpha: int = 64
    layers: int = 4  # LoRA on the top this-many blocks
    epochs: int = 5
    lr: float = 3e-3
    batch_size: int = 8
    max_answer_tokens: int = 48
    # At most this many example presentations per run (examples × epochs): many lessons
    # get fewer epochs, so 500 lessons (~2,000 examples) train 4 epochs, in ≤ 15 minutes
    # on 2 cores, while 20 or 100 lessons keep all of theirs.
    max_presentations: int = 8000
    # …and at least this many optimizer steps: three lessons (a dozen examples, two
    # batches an epoch) would otherwise stop after ten.
    min_steps: int = 30
    dpo_beta: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rank < 1 or self.layers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise InvalidInputError("rank, layers, epochs and batch size must be at least 1.")

    def epochs_for(self, examples: int) -> int:
        """How many epochs a run over ``examples`` examples trains (at least one)."""
        epochs = max(1, min(self.epochs, self.max_presentations // max(1, examples)))
        per_epoch = max(1, math.ceil(examples / self.batch_size))
        return max(epochs, math.ceil(self.min_steps / per_epoch))


@dataclass(frozen=True)
class Example:
    """One training conversation. ``rejected`` makes it a preference pair."""

    kind: str  # lesson | paraphrase | names | replay | preference
    question: str
    answer: str
    rejected: str | None = None
    lesson_id: int | None = None

    def messages(self, answer: str | None = None) -> list[Message]:
        return [{"role": "user", "content": self.question},
                {"role": "assistant", "content": answer if answer is not None else self.answer}]


@dataclass
class TrainResult:
    steps: int
    examples: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # per step
    changed: bool = False  # some trainable parameter moved

    def to_dict(self) -> dict[str, Any]:
        first = self.losses[: max(1, len(self.losses) // 10)]
        last = self.losses[-max(1, len(self.losses) // 10):]
        return {"steps": self.steps, "examples": self.examples,
                "seconds": round(self.seconds, 2),
                "loss_start": round(sum(first) / len(first), 4) if first else None,
                "loss_end": round(sum(last) / len(last), 4) if last else None}


# -- the training set -------------------------------------------------------------------

# Rewordings that keep the question's own words: a 135M model cannot paraphrase
# reliably, and a wrong paraphrase would teach a wrong association.
_TEMPLATES = (
    "{q}",
    "{bare}",
    "Can you tell me {lower}",
    "Quick question: {q}",
    "I would like to know: {lower}",
    "{q} Please answer briefly.",
)


def paraphrases(question: str) -> list[str]:
    """Rewordings of ``question`` (the question itself first), without duplicates."""
    q = " ".join(question.split())
    bare = q.rstrip("?.! ")
    lower = q[:1].lower() + q[1:] if not q[:2].isupper() else q
    out: dict[str, None] = {}
    for template in _TEMPLATES:
        out.setdefault(template.format(q=q, bare=bare, lower=lower), None)
    return list(out)


# Which rewordings train (the question itself is the first) and which one the gate holds out.
TRAINED_REWORDINGS = 3
HELD_OUT_REWORDING = -1


def build_examples(
    lessons: Sequence[Any],
    replay: Sequence[tuple[str, str]] = (),
) -> tuple[list[Example], dict[int, list[str]]]:
    """Training examples, and per lesson the rewording held out for the gate.

    ``lessons`` have id, kind, question, answer, rejected; ``replay`` is (prompt, answer).
    """
    examples: list[Example] = []
    gate: dict[int, list[str]] = {}
    askers: dict[str, int] = {}  # names → how many lessons ask about them
    for lesson in lessons:
        name = named(lesson.question)
        askers[name] = askers.get(name, 0) + 1
    for lesson in lessons:
        variants = paraphrases(lesson.question)
        gate[lesson.id] = [variants[HELD_OUT_REWORDING]]
        trained = [q for q in variants[:TRAINED_REWORDINGS] if q not in gate[lesson.id]]
        kinds = ["lesson"] + ["paraphrase"] * (len(trained) - 1)
        if lesson.kind == "preference":
            kinds = ["preference"] * len(trained)
        examples += [Example(k, q, lesson.answer, lesson.rejected, lesson.id)
                     for k, q in zip(kinds, trained, strict=True)]
        name = named(lesson.question)
        if lesson.kind == "correction" and name and askers[name] == 1:
            examples.append(Example("names", f"{name}?", lesson.answer, lesson_id=lesson.id))
    examples += [Example("replay", p, a) for p, a in replay]
    return examples, gate


# -- training -------------------------------------------------------------------------------


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    config: TrainConfig,
    *,
    progress: Progress | None = None,
) -> tuple[Any, TrainResult]:
    """Wrap ``model`` in a fresh LoRA adapter and train it on ``examples``.

    Returns the PEFT model (save it with ``save_pretrained``) and what happened.
    """
    if not examples:
        raise InvalidInputError("Nothing to train on: there are no active lessons.")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    peft, first = wrap_top_blocks(model, rank=config.rank, alpha=config.alpha,
                                  layers=config.layers)
    start = time.perf_counter()
    items = [_encode(tokenizer, ex, config.max_answer_tokens) for ex in examples]
    base = peft.get_base_model()
    with torch.no_grad():
        for item in items:
            item.hidden = _hidden_at(base, item, first)  # (T, C), frozen below `first`
    with torch.no_grad(), _top_blocks(base, first):
        for item in items:
            if item.rejected_ids is not None:  # reference log-probs for DPO: the base model
                with peft.disable_adapter():
                    item.ref = _pair_logps(peft, [item]).squeeze(0)  # (2,)

    params = [p for p in peft.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    per_epoch = math.ceil(len(items) / config.batch_size)
    epochs = config.epochs_for(len(items))
    total = per_epoch * epochs
    optimizer, schedule = adamw_with_warmup(params, lr=config.lr, total=total)
    result = TrainResult(steps=total, examples=len(items), seconds=0.0)
    peft.train()
    step = 0
    with _top_blocks(base, first):
        for _ in range(epochs):
            order = list(range(len(items)))
            rng.shuffle(order)
            for b in range(0, len(order), config.batch_size):
                batch = [items[i] for i in order[b: b + config.batch_size]]
                loss = _loss(peft, batch, config)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                result.losses.append(float(loss.detach()))
                step += 1
                if progress is not None:
                    progress(step, total)
    peft.eval()
    result.changed = any(not torch.equal(p, q) for p, q in zip(params, before, strict=True))
    result.seconds = time.perf_counter() - start
    return peft, result


@dataclass
class _Item:
    input_ids: list[int]
    labels: list[int]
    rejected_ids: list[int] | None = None  # a preference's rejected conversation
    rejected_labels: list[int] | None = None
    hidden: Any = None  # (T, C) input of the first adapted block
    rejected_hidden: Any = None
    ref: Any = None  # (2,) base log-probs of chosen, rejected


def wrap_top_blocks(model: Any, *, rank: int, alpha: int, layers: int) -> tuple[Any, int]:
    """``model`` in a fresh LoRA (all projections) on its top ``layers`` blocks; also
    returns the index of the first adapted block."""
    from peft import LoraConfig, get_peft_model

    n_layers = model.config.num_hidden_layers
    first = max(0, n_layers - layers)
    peft = get_peft_model(model, LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGET_MODULES,
        layers_to_transform=list(range(first, n_layers)), task_type="CAUSAL_LM",
    ))
    return peft, first


def adamw_with_warmup(params: list[Any], *, lr: float, total: int) -> tuple[Any, Any]:
    """AdamW and its schedule over ``total`` steps: linear warm-up over the first tenth,
    then linear decay to a tenth of ``lr``."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, total // 10))
        * max(0.1, 1 - step / total))
    return optimizer, schedule


def _encode(tokenizer: Any, ex: Example, max_answer_tokens: int) -> _Item:
    answer = _clip(tokenizer, ex.answer, max_answer_tokens)
    enc = encode_chat(tokenizer, ex.messages(answer), train_on="last")
    item = _Item(enc.input_ids, enc.labels)
    if ex.rejected is not None:
        rej = encode_chat(tokenizer, ex.messages(_clip(tokenizer, ex.rejected,
                                                       max_answer_tokens)),
                          train_on="last")
        item.rejected_ids, item.rejected_labels = rej.input_ids, rej.labels
    return item


def _clip(tokenizer: Any, text: str, max_tokens: int) -> str:
    """The first ``max_tokens`` tokens of ``text`` (long replay answers teach nothing more)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


class _Stop(Exception):
    """Raised by a hook to end a forward pass early."""


def _hidden_at(base: Any, item: _Item, first: int) -> Any:
    """(T, C) input of block ``first`` for the item (and its rejected twin, stored on it)."""
    def run(ids: list[int]) -> Any:
        captured: list[Any] = []

        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            captured.append((args[0] if args else kwargs["hidden_states"])[0].detach())
            raise _Stop

        layer = base.model.layers[first]
        handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            base.model(input_ids=torch.tensor([ids]), use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        return captured[0]  # (T, C)

    if item.rejected_ids is not None:
        item.rejected_hidden = run(item.rejected_ids)
    return run(item.input_ids)


@contextlib.contextmanager
def _top_blocks(base: Any, first: int) -> Iterator[None]:
    """Make the model run only blocks ``first…`` on ``inputs_embeds`` (cached hidden states)."""
    layers = base.model.layers
    base.model.layers = torch.nn.ModuleList(list(layers)[first:])
    try:
        yield
    finally:
        base.model.layers = layers


def _forward(peft: Any, hidden: list[Any], labels: list[list[int]]) -> tuple[Any, Any, Any]:
    """Logits where a label follows, their targets, and which sequence each belongs to."""
    B, T = len(hidden), max(h.shape[0] for h in hidden)
    C = hidden[0].shape[1]
    x = torch.zeros(B, T, C)  # right-padded: real positions never see the padding
    mask = torch.zeros(B, T, dtype=torch.long)
    target = torch.full((B, T), IGNORE)
    for b, (h, lab) in enumerate(zip(hidden, labels, strict=True)):
        n = h.shape[0]
        x[b, :n], mask[b, :n] = h, 1
        target[b, : n - 1] = torch.tensor(lab[1:n])  # position t predicts token t+1
    base = peft.get_base_model()
    out = base.model(inputs_embeds=x, attention_mask=mask, use_cache=False).last_hidden_state
    keep = target != IGNORE  # (B, T)
    logits = base.lm_head(out[keep])  # (N, vocab): only where there is something to learn
    rows = torch.arange(B).unsqueeze(1).expand(B, T)[keep]  # (N,) which sequence
    return logits, target[keep], rows


def _pair_logps(peft: Any, batch: list[_Item]) -> Any:
    """(B, 2) summed log-probs of each item's chosen and rejected answers."""
    hidden = [i.hidden for i in batch] + [i.rejected_hidden for i in batch]
    labels = [i.labels for i in batch] + [i.rejected_labels for i in batch]
    logits, target, rows = _forward(peft, hidden, labels)  # type: ignore[arg-type]
    token_logps = torch.log_softmax(logits.float(), -1).gather(1, target.unsqueeze(1)).squeeze(1)
    sums = torch.zeros(2 * len(batch)).index_add(0, rows, token_logps)
    return sums.view(2, len(batch)).T


def _loss(peft: Any, batch: list[_Item], config: TrainConfig) -> Any:
    logits, target, _ = _forward(peft, [i.hidden for i in batch], [i.labels for i in batch])
    logp = torch.log_softmax(logits.float(), -1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -logp.mean()
    pairs = [i for i in batch if i.rejected_ids is not None]
    if pairs:
        logps = _pair_logps(peft, pairs)  # (P, 2)
        ref = torch.stack([i.ref for i in pairs])  # (P, 2)
        margin = (logps[:, 0] - ref[:, 0]) - (logps[:, 1] - ref[:, 1])
        loss = loss + (-F.logsigmoid(config.dpo_beta * margin)).mean()
    return loss
