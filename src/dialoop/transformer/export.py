"""The decoder as a Hugging Face model: LlamaForCausalLM weights, config and tokenizer.

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
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from dialoop.errors import ConfigError
from dialoop.transformer.models import Decoder
from dialoop.transformer.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, Specials

__all__ = ["export_hf", "llama_state_dict"]

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


def export_hf(decoder: Decoder, tokenizer: Tokenizer, folder: Path) -> Path:
    """Write ``folder`` (config.json, model.safetensors, tokenizer files) for transformers."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    c = decoder.config
    if c.position != "rope":
        raise ConfigError(f"Only a decoder with RoPE positions exports to Llama's layout; "
                          f"this one has {c.position!r}. Train it with position='rope'.")
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
