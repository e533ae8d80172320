"""MLM masking (15 % chosen; 80/10/10) and NSP pairs (50/50), by their statistics."""

from __future__ import annotations

import random

import torch

from dialoop.transformer import IGNORE, mask_tokens, nsp_pairs
from dialoop.transformer.objectives import NSPPair, encoder_example

SPECIALS = (0, 1, 2, 3, 4, 5, 6)
MASK = 6
V = 1000


def _masked(ids: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return mask_tokens(ids, mask_id=MASK, special_ids=SPECIALS, vocab_size=V,
                       generator=torch.Generator().manual_seed(seed))


def test_mlm_chooses_15_percent_and_splits_them_80_10_10() -> None:
    ids = torch.randint(len(SPECIALS), V, (400, 500))  # 200 000 ordinary tokens
    inputs, labels = _masked(ids)
    chosen = labels != IGNORE
    assert abs(chosen.float().mean().item() - 0.15) < 0.005
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    replaced = ((inputs[chosen] != MASK) & (inputs[chosen] != ids[chosen])).sum().item() / n
    assert abs(masked - 0.8) < 0.01
    assert abs(kept - 0.1) < 0.01
    assert abs(replaced - 0.1) < 0.01
    # replacements are ordinary tokens, never [MASK] or another special token
    assert not torch.isin(inputs[chosen & (inputs != MASK) & (inputs != ids)],
                          torch.tensor(SPECIALS)).any()


def test_mlm_labels_only_the_chosen_positions_with_the_original_token() -> None:
    ids = torch.randint(len(SPECIALS), V, (50, 64))
    inputs, labels = _masked(ids, seed=1)
    chosen = labels != IGNORE
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen tokens are untouched
    assert chosen.any() and (~chosen).any()


def test_mlm_never_chooses_a_special_token() -> None:
    ids = torch.randint(len(SPECIALS), V, (200, 64))
    ids[:, 0], ids[:, 30], ids[:, -1] = 4, 5, 0  # [CLS], [SEP], padding
    ids[::2, 10:20] = 0  # and runs of padding
    inputs, labels = _masked(ids, seed=2)
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert (labels[special] == IGNORE).all()
    assert torch.equal(inputs[special], ids[special])


def _documents(n_docs: int, sentences: int) -> list[list[list[int]]]:
    # sentence s of document d is the tokens [1000 d + s] * 5: each is recognisable
    return [[[1000 * d + s] * 5 for s in range(sentences)] for d in range(n_docs)]


def test_nsp_pairs_are_half_true_continuations_and_half_random() -> None:
    pairs = nsp_pairs(_documents(20, 12), segment_tokens=10, rng=random.Random(0))
    n_random = sum(p.is_random for p in pairs)
    assert len(pairs) == 20 * 5  # 6 segments of two sentences per document: 5 pairs each
    assert n_random == len(pairs) // 2
    for p in pairs:
        doc_a, sentence_a = divmod(p.first[-1], 1000)
        doc_b, sentence_b = divmod(p.second[0], 1000)
        if p.is_random:
            assert doc_b != doc_a
        else:
            assert (doc_b, sentence_b) == (doc_a, sentence_a + 1)


def test_an_encoder_example_is_cls_a_sep_b_sep_with_segment_ids() -> None:
    ids, segments = encoder_example(NSPPair([10, 11, 12], [20, 21], False), block_size=10,
                                    cls_id=4, sep_id=5, pad_id=0)
    assert ids == [4, 10, 11, 12, 5, 20, 21, 5, 0, 0]
    assert segments == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    ids, _ = encoder_example(NSPPair(list(range(10, 30)), [40, 41], True), block_size=10,
                             cls_id=4, sep_id=5, pad_id=0)
    assert len(ids) == 10 and ids[-3:] == [40, 41, 5]  # the longer segment is trimmed
