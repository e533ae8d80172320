"""The decoder, exported, is a Llama that transformers loads and that computes the same
logits; its tokenizer comes along with a chat template."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from dialoop.errors import ConfigError
from dialoop.transformer import Decoder, TransformerConfig
from dialoop.transformer.data import bundled_corpus, read_corpus
from dialoop.transformer.export import export_hf
from dialoop.transformer.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return train_tokenizer(read_corpus([bundled_corpus()]), 300)


def test_transformers_loads_the_exported_decoder_and_computes_the_same_logits(
    tiny: TransformerConfig, tokenizer, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = dataclasses.replace(tiny, vocab_size=tokenizer.get_vocab_size())
    model = Decoder(config).eval()
    export_hf(model, tokenizer, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ids = torch.randint(9, config.vocab_size, (2, 16))
    with torch.no_grad():
        ours, theirs = model(ids)[0], hf(ids).logits
    assert ours.abs().max() > 0.1  # not trivially zero
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)
    # the fused fast path is the same model
    fast = Decoder(dataclasses.replace(config, fast_attention=True)).eval()
    fast.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fast(ids)[0], ours, atol=1e-5, rtol=1e-4)

    hf_tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    text = "The river rises in the hills."
    assert hf_tokenizer(text).input_ids == tokenizer.encode(text).ids
    prompt = hf_tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}],
                                              tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_only_a_rope_decoder_exports(tiny: TransformerConfig, tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = Decoder(dataclasses.replace(tiny, position="learned"))
    with pytest.raises(ConfigError, match="RoPE"):
        export_hf(model, tokenizer, tmp_path / "hf")
