"""Text in, tensors out: reading a corpus, splitting it, packing it into rows.

A corpus is one or more UTF-8 text files; a blank line separates documents (NSP pairs
never cross one by accident, and a causal LM sees <eos> between them). Sentences are
split at ., ! or ? followed by white space: crude, and enough for NSP segments.

Packing (as nanoGPT and every GPT pre-training run do it): all documents are laid end
to end, <eos> after each, and the stream is cut into rows of block_size + 1 tokens, so
no step computes on padding. A row r gives the inputs r[:-1] and the targets r[1:].
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import torch

from dialoop.errors import InvalidInputError

__all__ = ["bundled_corpus", "pack", "read_corpus", "split_sentences"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BLANK_LINES = re.compile(r"\n\s*\n")


def bundled_corpus() -> Path:
    """The small corpus shipped with dialoop (original text, see its header)."""
    return Path(str(files("dialoop.transformer") / "corpus.txt"))


def read_corpus(paths: Sequence[Path]) -> list[str]:
    """The documents of ``paths``, in order; lines starting with '#' are comments."""
    documents: list[str] = []
    for path in paths:
        if not path.is_file():
            raise InvalidInputError(f"No corpus file at {path}: check the path.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path} is not UTF-8 text ({exc.reason} at byte "
                                    f"{exc.start}): convert it first.") from None
        text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        documents += [" ".join(d.split()) for d in _BLANK_LINES.split(text) if d.strip()]
    if not documents:
        names = ", ".join(str(p) for p in paths)
        raise InvalidInputError(f"The corpus ({names}) holds no text: give a file with "
                                "documents separated by blank lines.")
    return documents


def split_sentences(document: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(document) if s]


def pack(documents: Sequence[list[int]], row_length: int, eos_id: int) -> torch.Tensor:
    """(N, row_length) token rows cut from the documents laid end to end, <eos> after each;
    the tail that does not fill a row is dropped."""
    stream = [t for doc in documents for t in (*doc, eos_id)]
    n = len(stream) // row_length
    # (n * row_length,) -> (n, row_length)
    return torch.tensor(stream[: n * row_length], dtype=torch.long).view(n, row_length)
