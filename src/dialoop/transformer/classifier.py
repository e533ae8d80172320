"""A pre-trained encoder fine-tuned to classify texts (intents, sentiment): BERT's recipe.

    text -> [CLS] tokens [SEP] -> Encoder.encode -> pool -> dropout -> Linear -> label

Pooling turns the (T, C) hidden states into one vector: ``cls`` takes the [CLS]
position (which NSP pre-training taught to summarise the pair), ``mean`` averages the
real (non-padding) positions, which a small encoder pre-trained briefly does better with.
The whole encoder is fine-tuned with the head (see dialoop/transformer/finetune.py).

A saved classifier is a folder: config.json (the encoder's shape, the labels, the
pooling), weights.safetensors and tokenizer.json; ``EncoderClassifier.load(folder)``
needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from dialoop.errors import InvalidInputError
from dialoop.transformer.config import TransformerConfig
from dialoop.transformer.models import Encoder
from dialoop.transformer.tokenizer import Specials, load_tokenizer

__all__ = ["EncoderClassifier", "Pooling", "encode_texts"]

Pooling = Literal["cls", "mean"]


def encode_texts(tokenizer: Any, texts: Sequence[str], block_size: int) -> torch.Tensor:
    """(N, T) ids, each row [CLS] tokens [SEP] (cut to ``block_size``), padded to the
    longest row."""
    rows = [[Specials.cls, *tokenizer.encode(t).ids[: block_size - 2], Specials.sep]
            for t in texts]
    T = max(len(r) for r in rows)
    return torch.tensor([r + [Specials.pad] * (T - len(r)) for r in rows], dtype=torch.long)


class EncoderClassifier(nn.Module):
    """An encoder and a linear head over its pooled output."""

    def __init__(self, encoder: Encoder, labels: Sequence[str], tokenizer: Any, *,
                 pooling: Pooling = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise InvalidInputError(f"pooling {pooling!r}: choose cls or mean.")
        self.encoder = encoder
        self.labels = list(labels)
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.d_model, len(self.labels))
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (B, T) from :func:`encode_texts`; returns logits (B, n_labels)."""
        h = self.encoder.encode(ids)  # (B, T, C)
        if self.pooling == "cls":
            pooled = h[:, 0]  # (B, C)
        else:
            real = (ids != self.encoder.config.pad_id).unsqueeze(-1).float()  # (B, T, 1)
            pooled = (h * real).sum(1) / real.sum(1)  # (B, C)
        return self.head(self.dropout(pooled))  # (B, L)

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """(N, n_labels) softmax probabilities, in eval mode."""
        was_training = self.training
        self.eval()
        out = [self(encode_texts(self.tokenizer, texts[i: i + batch_size],
                                 self.encoder.config.block_size)).softmax(-1)
               for i in range(0, len(texts), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, len(self.labels))

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The most probable label of each text and its probability."""
        if not texts:
            return []
        confidence, index = self.probabilities(texts).max(-1)  # (N,) each
        return [(self.labels[i], float(c))
                for i, c in zip(index.tolist(), confidence.tolist(), strict=True)]

    def save(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        config = {"encoder": self.encoder.config.to_json(), "labels": self.labels,
                  "pooling": self.pooling}
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()},
                  str(folder / "weights.safetensors"))
        self.tokenizer.save(str(folder / "tokenizer.json"))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> EncoderClassifier:
        """A classifier saved by :meth:`save` (``dialoop train classifier``), in eval mode."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise InvalidInputError(f"{folder} holds no classifier (no config.json): train "
                                    "one with `dialoop train classifier`.")
        config = json.loads((folder / "config.json").read_text())
        encoder = Encoder(TransformerConfig(**config["encoder"]))
        model = cls(encoder, config["labels"], load_tokenizer(folder / "tokenizer.json"),
                    pooling=config["pooling"])
        model.load_state_dict(load_file(str(folder / "weights.safetensors")))
        return model.eval()
