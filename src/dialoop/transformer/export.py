"""The decoder as a Hugging Face model (LlamaForCausalLM weights, config and tokenizer)
and as a GGUF file that llama.cpp runs.

The decoder was built to Llama's layout (RoPE in rotate-half form, RMSNorm, SwiGLU,
no biases, tied embeddings), so export is a renaming of tensors, one to one:

    embed.tokens.weight          -> model.embed_tokens.weight (and lm_head, tied)
    blocks.L.attn_norm.weight    -> model.layers.L.input_layernorm.weight
    blocks.L.attn.{q,k,v,o}      -> model.layers.L.self_attn.{q,k,v,o}_proj
    blocks.L.mlp_norm.weight     -> model.layers.L.post_attention_layernorm.weight
    blocks.L.mlp.{gate,up,down}  -> model.layers.L.mlp.{gate,up,down}_proj
    norm.weight                  -> model.norm.weight

``AutoModelForCausalLM.from_pretrained(folder)`` then computes the same logits
(tests/transformer/test_export.py), and anything that takes a transformers folder
(the torch engine, ``dialoop train sft``) can take it.

GGUF (``export_gguf``) holds the same tensors under llama.cpp's names (``token_embd``,
``blk.L.attn_q`` …), the llama architecture keys, and the tokenizer as a GPT-2 style
byte-level BPE (tokens in id order, merges as "a b" strings, the special tokens marked
CONTROL) with the ChatML template. One thing is not a renaming: llama.cpp's Llama applies
RoPE to *adjacent* pairs (x[2i], x[2i+1]) while transformers and we rotate x[i] with
x[i + D/2]. Permuting the rows of W_q and W_k inside each head, so that row i + D/2 comes
right after row i, turns one into the other (what llama.cpp's convert_hf_to_gguf.py does;
transformers' GGUF loader undoes it with ``_reverse_permute_weights``). Attention scores
q·k are unchanged because q and k are permuted alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from dialoop.errors import ConfigError
from dialoop.transformer.models import Decoder
from dialoop.transformer.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, Specials

__all__ = ["export_gguf", "export_hf", "gguf_tensors", "llama_state_dict"]

_RENAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.q.weight": "self_attn.q_proj.weight",
    "attn.k.weight": "self_attn.k_proj.weight",
    "attn.v.weight": "self_attn.v_proj.weight",
    "attn.o.weight": "self_attn.o_proj.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}


def llama_state_dict(decoder: Decoder) -> dict[str, torch.Tensor]:
    """The decoder's weights under LlamaForCausalLM's names."""
    out = {}
    for name, tensor in decoder.state_dict().items():
        if name == "embed.tokens.weight":
            out["model.embed_tokens.weight"] = tensor
            out["lm_head.weight"] = tensor
        elif name == "norm.weight":
            out["model.norm.weight"] = tensor
        else:
            _, layer, rest = name.split(".", 2)  # blocks.L.rest
            out[f"model.layers.{layer}.{_RENAMES[rest]}"] = tensor
    return out


def _check_llama_layout(decoder: Decoder) -> None:
    if decoder.config.position != "rope":
        raise ConfigError(f"Only a decoder with RoPE positions exports to Llama's layout; "
                          f"this one has {decoder.config.position!r}. Train it with "
                          "position='rope'.")


def export_hf(decoder: Decoder, tokenizer: Tokenizer, folder: Path) -> Path:
    """Write ``folder`` (config.json, model.safetensors, tokenizer files) for transformers."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    _check_llama_layout(decoder)
    c = decoder.config
    config = LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
        num_key_value_heads=c.n_head, max_position_embeddings=c.block_size,
        rms_norm_eps=c.norm_eps, rope_parameters={"rope_type": "default",
                                                  "rope_theta": c.rope_theta},
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        bos_token_id=Specials.bos, eos_token_id=[Specials.eos, Specials.im_end],
        pad_token_id=Specials.pad,
    )
    model = LlamaForCausalLM(config)
    model.load_state_dict(llama_state_dict(decoder), strict=True)
    model.save_pretrained(folder)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
        eos_token="<eos>", cls_token="<cls>", sep_token="<sep>", mask_token="<mask>",
        additional_special_tokens=SPECIAL_TOKENS[-2:], chat_template=CHAT_TEMPLATE,
        model_max_length=c.block_size,
    )
    wrapped.save_pretrained(folder)
    return folder


_GGUF_NAMES = {
    "attn_norm.weight": "attn_norm.weight",
    "attn.q.weight": "attn_q.weight",
    "attn.k.weight": "attn_k.weight",
    "attn.v.weight": "attn_v.weight",
    "attn.o.weight": "attn_output.weight",
    "mlp_norm.weight": "ffn_norm.weight",
    "mlp.gate.weight": "ffn_gate.weight",
    "mlp.up.weight": "ffn_up.weight",
    "mlp.down.weight": "ffn_down.weight",
}


def _rope_pairs_adjacent(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows of W_q or W_k reordered per head from (i, i + D/2) pairs to (2i, 2i + 1)."""
    out_features, C = w.size()
    D = out_features // n_head
    # (H*D, C) -> (H, 2, D/2, C): [head][half][i] -> swap to [head][i][half] -> (H*D, C)
    return w.view(n_head, 2, D // 2, C).transpose(1, 2).reshape(out_features, C)


def gguf_tensors(decoder: Decoder) -> dict[str, np.ndarray]:
    """The decoder's weights under llama.cpp's names, as float32 arrays (the output
    projection is tied: llama.cpp reuses token_embd when there is no output.weight)."""
    H = decoder.config.n_head
    out = {}
    for name, tensor in decoder.state_dict().items():
        t = tensor.detach().float()
        if name == "embed.tokens.weight":
            key = "token_embd.weight"
        elif name == "norm.weight":
            key = "output_norm.weight"
        else:
            _, layer, rest = name.split(".", 2)  # blocks.L.rest
            key = f"blk.{layer}.{_GGUF_NAMES[rest]}"
            if rest in ("attn.q.weight", "attn.k.weight"):
                t = _rope_pairs_adjacent(t, H)
        out[key] = t.contiguous().numpy()
    return out


def export_gguf(decoder: Decoder, tokenizer: Tokenizer, path: Path) -> Path:
    """Write ``path``, a float32 GGUF file of the decoder and its tokenizer, for llama.cpp
    (and so for ``dialoop chat --model PATH``)."""
    import gguf

    _check_llama_layout(decoder)
    c = decoder.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(path.stem)
    writer.add_context_length(c.block_size)
    writer.add_embedding_length(c.d_model)
    writer.add_block_count(c.n_layer)
    writer.add_feed_forward_length(c.d_ff)
    writer.add_head_count(c.n_head)
    writer.add_head_count_kv(c.n_head)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.norm_eps)
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, tokenizer, c.vocab_size)
    for name, array in gguf_tensors(decoder).items():
        writer.add_tensor(name, array)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_tokenizer(writer: Any, tokenizer: Tokenizer, vocab_size: int) -> None:
    """The byte-level BPE as llama.cpp's "gpt2" tokenizer: its pre-tokenizer regex is
    GPT-2's, the one ``pre_tokenizers.ByteLevel`` applies."""
    import gguf

    by_id = {i: token for token, i in tokenizer.get_vocab(with_added_tokens=True).items()}
    if sorted(by_id) != list(range(vocab_size)):
        raise ConfigError(f"The tokenizer's ids are not 0 … {vocab_size - 1} (it has "
                          f"{len(by_id)} entries, the model {vocab_size} rows): export with "
                          "the tokenizer the decoder was trained with.")
    model = json.loads(tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise ConfigError(f"GGUF export writes a byte-level BPE tokenizer; this one is a "
                          f"{model.get('type')} model.")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    tokens = [by_id[i] for i in range(vocab_size)]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIAL_TOKENS
                            else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(Specials.bos)
    writer.add_eos_token_id(Specials.eos)
    writer.add_eot_token_id(Specials.im_end)  # the end of a ChatML turn ends generation
    writer.add_unk_token_id(Specials.unk)
    writer.add_pad_token_id(Specials.pad)
    writer.add_add_bos_token(False)  # pre-training rows do not start with <bos>
    writer.add_chat_template(CHAT_TEMPLATE)
