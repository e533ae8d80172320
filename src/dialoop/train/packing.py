"""Dialogues → packed rows of tokens, so no step computes on padding.

Several tokenized dialogues are laid end to end in one row of at most
``pack_length`` tokens (first-fit decreasing). Each keeps its own position ids
(0, 1, 2, … restarting at every dialogue); given position ids and no attention
mask, transformers builds a block-diagonal causal mask, so a token never attends
to another dialogue of its row (``test_packing`` checks that packed logits equal
unpacked ones).

Labels are shifted *per dialogue* before packing (``labels[t]`` is the token that
must follow position ``t``), so the last token of one dialogue is never asked to
predict the first token of the next.

(transformers' ``DataCollatorWithFlattening`` flattens whatever batch it is given,
so a row's length, and the memory a step needs, varies with the batch; here rows
are filled to a fixed token budget over the whole data set, which also needs the
fewest rows. Bin packing is a few lines; TRL's packing needs its dataset types.)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from dialoop.train.chat_data import IGNORE, encode_chat
from dialoop.train.data import Dialogue

__all__ = ["PackedRow", "Tokenized", "encode_dialogues", "pack", "row_loss"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    targets: list[int]  # shifted: targets[t] is what position t must predict, or IGNORE


@dataclass(frozen=True)
class PackedRow:
    """One training row: (1, T) tensors ready for the model."""

    input_ids: torch.Tensor  # (1, T)
    position_ids: torch.Tensor  # (1, T)
    targets: torch.Tensor  # (T,) shifted labels, IGNORE where no loss
    n_dialogues: int

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())


def encode_dialogues(
    tokenizer: Any,
    dialogues: Sequence[Dialogue],
    *,
    max_length: int,
    train_on: Literal["assistant", "last"] = "assistant",
) -> list[Tokenized]:
    """Tokenize with the model's chat template; cut dialogues longer than ``max_length``."""
    out: list[Tokenized] = []
    cut = dropped = 0
    for d in dialogues:
        enc = encode_chat(tokenizer, d.messages, train_on=train_on, untrained=d.untrained)
        ids, labels = enc.input_ids, enc.labels
        if len(ids) > max_length:
            cut += 1
            ids, labels = ids[:max_length], labels[:max_length]
        targets = labels[1:] + [IGNORE]
        if all(t == IGNORE for t in targets):
            dropped += 1  # its assistant text lies beyond the cut
            continue
        out.append(Tokenized(ids, targets))
    if cut:
        log.warning("%d dialogues are longer than %d tokens and were cut", cut, max_length)
    if dropped:
        log.warning("%d dialogues had no assistant text to learn from within %d tokens: "
                    "skipped", dropped, max_length)
    return out


def pack(sequences: Sequence[Tokenized], pack_length: int, seed: int) -> list[PackedRow]:
    """Lay sequences end to end in rows of at most ``pack_length`` tokens."""
    order = list(range(len(sequences)))
    random.Random(seed).shuffle(order)  # ties in length are broken at random, not by file order
    order.sort(key=lambda i: -len(sequences[i].input_ids))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:  # first fit decreasing: within 11/9 of the fewest rows possible
        n = len(sequences[i].input_ids)
        j = next((b for b, free in enumerate(room) if free >= n), None)
        if j is None:
            bins.append([i])
            room.append(pack_length - n)
        else:
            bins[j].append(i)
            room[j] -= n
    return [_row([sequences[i] for i in b]) for b in bins]


def _row(parts: list[Tokenized]) -> PackedRow:
    ids = [t for p in parts for t in p.input_ids]
    pos = [t for p in parts for t in range(len(p.input_ids))]
    targets = [t for p in parts for t in p.targets]
    return PackedRow(
        input_ids=torch.tensor([ids]),
        position_ids=torch.tensor([pos]),
        targets=torch.tensor(targets),
        n_dialogues=len(parts),
    )


def row_loss(model: Any, row: PackedRow) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy over the row's targets, how many targets were predicted right).

    Only positions with a target go through the output layer (``logits_to_keep``):
    with a 49k-token vocabulary that layer is a sixth of the model's compute, and
    most positions of a dialogue are not the assistant's.
    """
    keep = (row.targets != IGNORE).nonzero().squeeze(1)  # (K,)
    out = model(
        input_ids=row.input_ids,
        position_ids=row.position_ids,
        use_cache=False,  # with a cache, transformers would not see the packed dialogues
        logits_to_keep=keep,
    )
    logits = out.logits[0].float()  # (K, vocab)
    targets = row.targets[keep]  # (K,)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    correct = int((logits.argmax(dim=-1) == targets).sum())
    return loss, correct
