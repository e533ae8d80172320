"""Three architectures built from the same blocks.

- ``Decoder`` (GPT-style causal LM): each position predicts the next token and sees only
  the positions before it (the causal mask). With RoPE it has Llama's layout exactly,
  which is what lets ``export.py`` hand it to transformers.
- ``Encoder`` (BERT-style): every position sees every other; trained with masked
  language modelling (predict the hidden tokens) and next-sentence prediction (is
  segment B the continuation of segment A?) from the [CLS] position.
- ``EncoderDecoder`` (the original Transformer, T5, BART): the encoder reads the source,
  the decoder writes the target causally while attending to the encoder's output
  through cross-attention.

The token embedding matrix doubles as the output projection (tied weights): logits are
h Eᵀ, a score for each vocabulary entry by its similarity to the final hidden state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dialoop.transformer.blocks import Block, RMSNorm
from dialoop.transformer.config import TransformerConfig
from dialoop.transformer.objectives import IGNORE
from dialoop.transformer.positions import LearnedPositions, Rotary, SinusoidalPositions

__all__ = ["Decoder", "Encoder", "EncoderDecoder", "EncoderOutput", "build_model"]


class _Embedding(nn.Module):
    """Token embeddings plus, unless RoPE does it inside attention, positions."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.positions: nn.Module | None = {
            "learned": lambda: LearnedPositions(config.block_size, config.d_model),
            "sinusoidal": lambda: SinusoidalPositions(config.block_size, config.d_model),
            "rope": lambda: None,
        }[config.position]()
        self.rope = (Rotary(config.block_size, config.head_dim, config.rope_theta)
                     if config.position == "rope" else None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids)  # (B, T) -> (B, T, C)
        if isinstance(self.positions, SinusoidalPositions):
            # "we multiply those weights by √d_model" (Attention Is All You Need, 3.4): the
            # sines have amplitude 1 and the embeddings start at 0.02; unscaled, the tokens
            # are a whisper under their positions and a copy task barely trains
            x = x * math.sqrt(x.size(-1))
        return x if self.positions is None else self.positions(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.tokens.weight.T  # (B, T, C) @ (C, V) -> (B, T, V)


def _init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for every matrix and embedding, as GPT-2 and Llama initialise."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)


def _check_length(config: TransformerConfig, T: int) -> None:
    if config.block_size < T:
        raise ValueError(f"sequence of {T} tokens is longer than block_size {config.block_size}")


class Decoder(nn.Module):
    """GPT-style causal language model."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embedding(config)
        self.blocks = nn.ModuleList(Block(config, causal=True) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        _init_weights(self)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids: (B, T); targets: (B, T) the token each position must predict, or IGNORE.
        Returns logits (B, T, V) and the mean cross-entropy (None without targets)."""
        B, T = ids.size()
        _check_length(self.config, T)
        x = self.embed(ids)  # (B, T, C)
        for block in self.blocks:
            x = block(x, rope=self.embed.rope)
        logits = self.embed.logits(self.norm(x))  # (B, T, V)
        return logits, None if targets is None else _cross_entropy(logits, targets)


@dataclass
class EncoderOutput:
    mlm_logits: torch.Tensor  # (B, T, V)
    nsp_logits: torch.Tensor  # (B, 2): 0 = B follows A, 1 = B is random
    loss: torch.Tensor | None  # MLM + NSP, given the labels
    mlm_loss: torch.Tensor | None
    nsp_loss: torch.Tensor | None


class Encoder(nn.Module):
    """BERT-style bidirectional encoder with a masked-LM head and a next-sentence head."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        C = config.d_model
        self.embed = _Embedding(config)
        self.segments = nn.Embedding(2, C)  # sentence A or sentence B
        self.blocks = nn.ModuleList(Block(config, causal=False) for _ in range(config.n_layer))
        self.norm = RMSNorm(C, config.norm_eps)
        # MLM head: a transform, then scores against the (tied) token embeddings + a bias
        self.mlm_transform = nn.Sequential(nn.Linear(C, C), nn.GELU(), RMSNorm(C, config.norm_eps))
        self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        # NSP head: BERT's "pooler" (tanh layer on the [CLS] position), then 2 classes
        self.pooler = nn.Linear(C, C)
        self.nsp = nn.Linear(C, 2)
        _init_weights(self)

    def encode(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """The final hidden states (B, T, C); padding (pad_id) is never attended to."""
        B, T = ids.size()
        _check_length(self.config, T)
        padding = ids == self.config.pad_id  # (B, T)
        x = self.embed(ids)  # (B, T, C)
        if segments is not None:
            x = x + self.segments(segments)  # (B, T, C)
        for block in self.blocks:
            x = block(x, padding=padding, rope=self.embed.rope)
        return self.norm(x)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor | None = None,
                mlm_labels: torch.Tensor | None = None,
                nsp_labels: torch.Tensor | None = None) -> EncoderOutput:
        h = self.encode(ids, segments)  # (B, T, C)
        mlm_logits = self.embed.logits(self.mlm_transform(h)) + self.mlm_bias  # (B, T, V)
        nsp_logits = self.nsp(torch.tanh(self.pooler(h[:, 0])))  # [CLS]: (B, C) -> (B, 2)
        mlm_loss = None if mlm_labels is None else _cross_entropy(mlm_logits, mlm_labels)
        nsp_loss = None if nsp_labels is None else F.cross_entropy(nsp_logits, nsp_labels)
        parts = [p for p in (mlm_loss, nsp_loss) if p is not None]
        loss = sum(parts[1:], parts[0]) if parts else None
        return EncoderOutput(mlm_logits, nsp_logits, loss, mlm_loss, nsp_loss)


class EncoderDecoder(nn.Module):
    """Sequence to sequence: a bidirectional encoder and a causal decoder that
    cross-attends to it. One embedding table for source, target and output."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embedding(config)
        self.encoder = nn.ModuleList(Block(config, causal=False) for _ in range(config.n_layer))
        self.encoder_norm = RMSNorm(config.d_model, config.norm_eps)
        self.decoder = nn.ModuleList(Block(config, causal=True, cross=True)
                                     for _ in range(config.n_layer))
        self.decoder_norm = RMSNorm(config.d_model, config.norm_eps)
        _init_weights(self)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        _check_length(self.config, source.size(1))
        padding = source == self.config.pad_id  # (B, S)
        x = self.embed(source)  # (B, S, C)
        for block in self.encoder:
            x = block(x, padding=padding, rope=self.embed.rope)
        return self.encoder_norm(x)

    def forward(self, source: torch.Tensor, target_in: torch.Tensor,
                targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """source: (B, S); target_in: (B, T) the target shifted right (starting with <bos>);
        targets: (B, T) what each position must write, IGNORE at padding."""
        _check_length(self.config, target_in.size(1))
        memory = self.encode(source)  # (B, S, C)
        memory_padding = source == self.config.pad_id  # (B, S)
        x = self.embed(target_in)  # (B, T, C)
        for block in self.decoder:
            # padding at the end of the target needs no mask: the causal mask already
            # hides it from every real position before it
            x = block(x, rope=self.embed.rope, memory=memory, memory_padding=memory_padding)
        logits = self.embed.logits(self.decoder_norm(x))  # (B, T, V)
        return logits, None if targets is None else _cross_entropy(logits, targets)


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    B, T, V = logits.size()
    # one row per position: (B, T, V) -> (B*T, V) scores against (B*T,) targets
    return F.cross_entropy(logits.view(B * T, V), targets.reshape(B * T), ignore_index=IGNORE)


def build_model(arch: str, config: TransformerConfig) -> Decoder | Encoder | EncoderDecoder:
    """The model for ``arch``: ``decoder``, ``encoder`` or ``encdec``."""
    models = {"decoder": Decoder, "encoder": Encoder, "encdec": EncoderDecoder}
    if arch not in models:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(models)}")
    return models[arch](config)
