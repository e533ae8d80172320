"""Pre-training objectives: what a model is asked to predict from raw text.

- Causal LM (GPT): at every position, the next token. Inputs are a packed row
  ``r[:-1]``, targets ``r[1:]`` (see ``data.pack``).
- Masked LM (BERT): choose 15 % of the (non-special) tokens; of those, replace 80 % by
  [MASK], 10 % by a random token and leave 10 % unchanged; predict the original token
  at the chosen positions only (label IGNORE everywhere else). The random and unchanged
  10 %s stop the model from learning that only [MASK] positions matter, since at
  fine-tuning time there is no [MASK].
- Next-sentence prediction (BERT): given segments A and B, is B the text that follows A
  (label 0) or a segment from elsewhere (label 1)? Half and half.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["IGNORE", "NSPPair", "encoder_example", "mask_tokens", "nsp_pairs"]

IGNORE = -100  # the label of positions without a loss (cross_entropy's ignore_index)


def mask_tokens(ids: torch.Tensor, *, mask_id: int, special_ids: Sequence[int],
                vocab_size: int, generator: torch.Generator, rate: float = 0.15
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for masked language modelling from ``ids`` (any shape).

    Random replacements are drawn from the ordinary tokens (ids not in ``special_ids``).
    """
    special = torch.tensor(list(special_ids), dtype=ids.dtype)
    eligible = ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=generator) < rate) & eligible
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    action = torch.rand(ids.shape, generator=generator)  # one draw decides 80 / 10 / 10
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)  # the last 10 % stay as they are
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in set(special_ids)],
                            dtype=ids.dtype)
    random_ids = ordinary[torch.randint(len(ordinary), ids.shape, generator=generator)]
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


@dataclass(frozen=True)
class NSPPair:
    first: list[int]  # segment A's tokens
    second: list[int]  # segment B's tokens
    is_random: bool  # the NSP label: False (0) when B follows A in the text


def nsp_pairs(documents: Sequence[Sequence[list[int]]], *, segment_tokens: int,
              rng: random.Random) -> list[NSPPair]:
    """Sentence pairs for NSP: half with B the true continuation of A, half with B a
    segment from another document (or, with one document, from elsewhere in it).

    ``documents``: each a list of tokenized sentences. Consecutive sentences are joined
    into segments of about ``segment_tokens`` tokens; every two consecutive segments of a
    document make a pair.
    """
    segments = [(d, _segments(doc, segment_tokens)) for d, doc in enumerate(documents)]
    flat = [(d, s) for d, segs in segments for s in range(len(segs))]
    candidates = [(d, s) for d, segs in segments for s in range(len(segs) - 1)]
    # exactly half random (rounded down), in shuffled order: balanced by construction
    labels = [i < len(candidates) // 2 for i in range(len(candidates))]
    rng.shuffle(labels)
    several_documents = len(documents) > 1
    pairs = []
    for (d, s), is_random in zip(candidates, labels, strict=True):
        second = segments[d][1][s + 1]
        if is_random:
            for _ in range(100):  # rejection sampling: a segment that does not follow A
                d2, s2 = rng.choice(flat)
                if d2 != d if several_documents else s2 not in (s, s + 1):
                    break
            else:
                continue
            second = segments[d2][1][s2]
        pairs.append(NSPPair(segments[d][1][s], second, is_random))
    return pairs


def _segments(sentences: Sequence[list[int]], budget: int) -> list[list[int]]:
    out: list[list[int]] = []
    current: list[int] = []
    for sentence in sentences:
        current = current + sentence
        if len(current) >= budget:
            out.append(current[:budget])
            current = []
    if current:
        out.append(current)
    return out


def encoder_example(pair: NSPPair, *, block_size: int, cls_id: int, sep_id: int,
                    pad_id: int) -> tuple[list[int], list[int]]:
    """([CLS] A [SEP] B [SEP] + padding, segment ids 0 for A's part and 1 for B's),
    A and B trimmed (the longer one first) to fit ``block_size``."""
    a, b = list(pair.first), list(pair.second)
    while len(a) + len(b) > block_size - 3:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    ids = [cls_id, *a, sep_id, *b, sep_id]
    segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    padding = block_size - len(ids)
    return ids + [pad_id] * padding, segments + [0] * padding
