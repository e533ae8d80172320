"""The encoder–decoder on pairs: question → answer, text → summary, anything → anything.

Training is teacher forcing: the encoder reads the source, and the decoder, given the
target shifted right (``<bos>`` t1 … tn), predicts it unshifted (t1 … tn ``<eos>``) at
every position at once; the causal mask keeps each position from seeing what it must
predict. Generation is greedy: start from ``<bos>``, append the most probable next token,
stop at ``<eos>`` (or at block_size tokens).

A pairs file is JSONL ({"source": …, "target": …} per line) or TSV (source TAB target per
line; a first line "source<TAB>target" is a header). ``dialoop train pretrain --arch
encdec --pairs FILE`` trains on it; ``Seq2Seq.load(run_folder).generate(text)`` answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dialoop.errors import InvalidInputError
from dialoop.transformer.models import EncoderDecoder
from dialoop.transformer.objectives import IGNORE
from dialoop.transformer.tokenizer import Specials

__all__ = ["Seq2Seq", "greedy", "pair_rows", "read_pairs"]


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(source, target) pairs from a JSONL or TSV file."""
    if not path.is_file():
        raise InvalidInputError(f"No pairs file at {path}: check the path.")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = []
    for n, line in enumerate(lines, 1):
        if path.suffix.lower() in (".jsonl", ".json"):
            record = json.loads(line)
            if not isinstance(record, dict) or not {"source", "target"} <= set(record):
                raise InvalidInputError(f"{path}, line {n}: each line needs \"source\" and "
                                        "\"target\" fields.")
            pairs.append((str(record["source"]), str(record["target"])))
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise InvalidInputError(f"{path}, line {n}: a TSV line is source<TAB>target; "
                                    f"this one has {len(fields)} field(s).")
        if n == 1 and [f.strip().lower() for f in fields] == ["source", "target"]:
            continue  # the header
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise InvalidInputError(f"{path} holds no pairs.")
    return pairs


def pair_rows(pairs: list[tuple[str, str]], tokenizer: Any, block_size: int
              ) -> dict[str, torch.Tensor]:
    """Teacher-forcing rows, each (N, T): the source padded with <pad>, the decoder's input
    <bos> t1 … and its targets t1 … <eos>, IGNORE where there is nothing to predict."""
    T = block_size
    source, target_in, targets = [], [], []
    for s, t in pairs:
        src = tokenizer.encode(s).ids[:T]
        tgt = tokenizer.encode(t).ids[: T - 1]
        source.append(src + [Specials.pad] * (T - len(src)))
        target_in.append([Specials.bos, *tgt] + [Specials.pad] * (T - 1 - len(tgt)))
        targets.append([*tgt, Specials.eos] + [IGNORE] * (T - 1 - len(tgt)))
    return {k: torch.tensor(v, dtype=torch.long).view(-1, T)
            for k, v in (("source", source), ("target_in", target_in), ("targets", targets))}


@torch.no_grad()
def greedy(model: EncoderDecoder, source: torch.Tensor, max_new_tokens: int | None = None
           ) -> list[list[int]]:
    """The greedy output ids of each source row (B, S), without <bos> and <eos>."""
    B = source.size(0)
    limit = min(max_new_tokens or model.config.block_size, model.config.block_size - 1)
    out = torch.full((B, 1), Specials.bos, dtype=torch.long)  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool)  # (B,)
    while out.size(1) <= limit and not done.all():
        logits, _ = model(source, out)  # (B, t, V): re-reads the source; fine at this size
        next_id = logits[:, -1].argmax(-1)  # (B,)
        next_id = torch.where(done, torch.full_like(next_id, Specials.eos), next_id)
        done |= next_id == Specials.eos
        out = torch.cat([out, next_id.unsqueeze(1)], dim=1)  # (B, t + 1)
    rows = []
    for row in out[:, 1:].tolist():
        rows.append(row[: row.index(Specials.eos)] if Specials.eos in row else row)
    return rows


class Seq2Seq:
    """A trained encoder–decoder and its tokenizer: text in, text out."""

    def __init__(self, model: EncoderDecoder, tokenizer: Any) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, run: Path | str) -> Seq2Seq:
        """The last checkpoint of a ``dialoop train pretrain --arch encdec`` run."""
        from dialoop.transformer.pretrain import load_run

        model, tokenizer, _ = load_run(Path(run), "encdec")
        return cls(model, tokenizer)  # type: ignore[arg-type]

    def generate(self, source: str, max_new_tokens: int | None = None) -> str:
        """The greedy output for ``source``."""
        return self.generate_many([source], max_new_tokens)[0]

    def generate_many(self, sources: list[str], max_new_tokens: int | None = None) -> list[str]:
        if not sources:
            return []
        T = self.model.config.block_size
        rows = pair_rows([(s, "") for s in sources], self.tokenizer, T)["source"]  # (B, T)
        return [self.tokenizer.decode(ids) for ids in greedy(self.model, rows, max_new_tokens)]
