"""Random LoRA adapters for the bundled model, written as PEFT folders without loading it.

A PEFT LoRA folder is a config and two matrices per adapted weight, so tests that need
an adapter of the right shapes (to load, stack, or store) write one with numpy: no
training, no torch model. :func:`merged_lora` writes the one adapter equal to two
applied together: ``s₁·B₁A₁ + s₂·B₂A₂ = s·[s₁/s·B₁, s₂/s·B₂]·[A₁; A₂]`` (ranks
concatenated), exactly, up to float rounding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dialoop.engine.models import bundled_gguf

_GROUP = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
          "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def _dims() -> dict[str, tuple[int, int]]:
    """(in, out) features of each projection of the bundled model, from its GGUF."""
    import gguf

    reader = gguf.GGUFReader(str(bundled_gguf()))

    def field(key: str) -> int:
        return int(reader.fields[f"llama.{key}"].contents())

    hidden, ffn = field("embedding_length"), field("feed_forward_length")
    kv = hidden // field("attention.head_count") * field("attention.head_count_kv")
    return {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv),
            "o_proj": (hidden, hidden), "gate_proj": (hidden, ffn), "up_proj": (hidden, ffn),
            "down_proj": (ffn, hidden)}


def _key(layer: int, module: str, ab: str) -> str:
    return f"base_model.model.model.layers.{layer}.{_GROUP[module]}.{module}.lora_{ab}.weight"


def _write(folder: Path, tensors: dict[str, np.ndarray], rank: int, alpha: float,
           modules: Sequence[str], layers: Sequence[int]) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
        "lora_dropout": 0.0, "target_modules": sorted(modules), "bias": "none",
        "layers_to_transform": list(layers), "base_model_name_or_path": None}))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def random_lora(folder: Path, *, seed: int, rank: int = 4, alpha: float = 8.0,
                modules: Sequence[str] = ("v_proj", "o_proj"),
                layers: Sequence[int] = range(24, 30), std: float = 0.05) -> Path:
    """A PEFT LoRA folder with random A (r, in) and B (out, r) for ``modules`` of ``layers``."""
    rng = np.random.default_rng(seed)
    dims = _dims()
    tensors = {}
    for layer in layers:
        for module in modules:
            n_in, n_out = dims[module]
            tensors[_key(layer, module, "A")] = (rng.standard_normal((rank, n_in))
                                                 / np.sqrt(n_in)).astype(np.float32)
            tensors[_key(layer, module, "B")] = (rng.standard_normal((n_out, rank))
                                                 * std).astype(np.float32)
    return _write(folder, tensors, rank, alpha, modules, layers)


def merged_lora(first: Path, second: Path, out: Path) -> Path:
    """One adapter equal to ``first`` and ``second`` applied together (same modules)."""
    from safetensors.numpy import load_file

    configs = [json.loads((f / "adapter_config.json").read_text()) for f in (first, second)]
    tensors = [load_file(str(f / "adapter_model.safetensors")) for f in (first, second)]
    assert tensors[0].keys() == tensors[1].keys(), "merged_lora needs the same modules"
    scales = [c["lora_alpha"] / c["r"] for c in configs]
    rank = configs[0]["r"] + configs[1]["r"]
    alpha = float(rank)  # scale 1: the parts' scales go into B
    merged = {}
    for key in tensors[0]:
        if ".lora_A." in key:
            merged[key] = np.concatenate([t[key] for t in tensors], axis=0)  # (r1 + r2, in)
        else:
            merged[key] = np.concatenate([t[key] * s for t, s in zip(tensors, scales,
                                                                     strict=True)], axis=1)
    return _write(out, merged, rank, alpha, configs[0]["target_modules"],
                  configs[0]["layers_to_transform"])
