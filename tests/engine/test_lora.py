"""A PEFT adapter exported to GGUF changes llama.cpp's logits as it changes torch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dialoop.engine.lora import export_lora_gguf
from dialoop.engine.models import bundled_gguf

pytestmark = pytest.mark.slow


def _llama_logits(ids: list[int], lora: Path | None = None) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(str(bundled_gguf()), n_ctx=256, logits_all=True, verbose=False,
                          lora_path=str(lora) if lora else None)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)])
    llm.close()
    return out


@pytest.mark.parametrize("modules", [["q_proj", "k_proj"], ["v_proj", "o_proj", "down_proj"]])
def test_exported_adapter_reproduces_the_peft_change(hf_model_dir: Path, hf_tokenizer, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     modules: list[str]) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(hf_model_dir)).eval()
    prompt = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of Japan?"}],
        tokenize=False, add_generation_prompt=True)
    ids = hf_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        base_torch = model(torch.tensor([ids])).logits[0].numpy()
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=modules,
                                                  init_lora_weights=False))
    with torch.no_grad():
        adapted_torch = peft_model(torch.tensor([ids])).logits[0].numpy()
    peft_model.save_pretrained(tmp_path / "peft")
    gguf = export_lora_gguf(tmp_path / "peft", tmp_path / "a.gguf", base_gguf=bundled_gguf())

    base_llama, adapted_llama = _llama_logits(ids), _llama_logits(ids, gguf)
    change_torch = adapted_torch - base_torch
    change_llama = adapted_llama - base_llama
    assert np.linalg.norm(change_torch) > 0.1 * np.linalg.norm(base_torch)  # a real change
    assert np.corrcoef(change_torch.ravel(), change_llama.ravel())[0, 1] > 0.97
