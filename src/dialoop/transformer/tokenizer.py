"""A small byte-level BPE tokenizer trained on the pre-training corpus itself.

Byte-level BPE (GPT-2's scheme) starts from the 256 byte values, so any text can be
encoded with no unknown token, and merges the most frequent adjacent pairs until the
vocabulary is full. A few thousand entries suit a corpus of a few hundred kilobytes;
a borrowed 49k-entry vocabulary would make the embedding table most of a tiny model.

The special tokens come first (ids 0 …), the same for every architecture, so that one
tokenizer serves the encoder's [CLS]/[SEP]/[MASK], the decoders' <bos>/<eos> and, once
the exported decoder is fine-tuned on dialogues, the ChatML turn markers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "Specials", "load_tokenizer", "train_tokenizer"]

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>", "<cls>", "<sep>", "<mask>",
                  "<|im_start|>", "<|im_end|>"]

# ChatML, so that `dialoop chat --engine torch` and `dialoop train sft` find a template
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class Specials:
    """The ids of the special tokens (the same in every tokenizer trained here)."""

    pad, unk, bos, eos, cls, sep, mask, im_start, im_end = range(len(SPECIAL_TOKENS))
    all = tuple(range(len(SPECIAL_TOKENS)))


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == i, "special tokens must come first"
    return tokenizer


def load_tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
