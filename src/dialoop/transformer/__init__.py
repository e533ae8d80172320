"""A Transformer from first principles: read it top to bottom, train it, export it.

One module per idea, in the order to read them:

    config.py      the shape of a model (TransformerConfig)
    positions.py   sinusoidal, learned and rotary (RoPE) positions
    attention.py   softmax(QKᵀ/√d_k)V written out, the causal mask, multi-head attention
    blocks.py      RMSNorm, SwiGLU, the pre-norm residual block (with cross-attention)
    models.py      Encoder (BERT: MLM + NSP), Decoder (GPT), EncoderDecoder (seq2seq)
    objectives.py  MLM masking (15 %, 80/10/10), NSP pairs (50/50)
    tokenizer.py   a byte-level BPE trained on the corpus
    data.py        reading a corpus, packing it into rows
    schedule.py    linear warm-up + cosine decay
    pretrain.py    the training recipe (`dialoop train pretrain`)
    export.py      the decoder as a transformers LlamaForCausalLM folder, and as GGUF
    classifier.py  a pre-trained encoder + a linear head
    finetune.py    its training recipe (`dialoop train classifier`)
    seq2seq.py     the encoder–decoder on source → target pairs, greedy generation

docs/transformer.md walks through them with the formulas.
"""

from __future__ import annotations

from dialoop.transformer.attention import (
    MultiHeadAttention,
    causal_mask,
    scaled_dot_product_attention,
)
from dialoop.transformer.classifier import EncoderClassifier
from dialoop.transformer.config import TransformerConfig
from dialoop.transformer.models import Decoder, Encoder, EncoderDecoder, build_model
from dialoop.transformer.objectives import IGNORE, mask_tokens, nsp_pairs
from dialoop.transformer.seq2seq import Seq2Seq

__all__ = [
    "IGNORE",
    "Decoder",
    "Encoder",
    "EncoderClassifier",
    "EncoderDecoder",
    "MultiHeadAttention",
    "Seq2Seq",
    "TransformerConfig",
    "build_model",
    "causal_mask",
    "mask_tokens",
    "nsp_pairs",
    "scaled_dot_product_attention",
]
