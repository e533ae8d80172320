"""PEFT LoRA adapters → GGUF LoRA files that llama.cpp hot-swaps onto a GGUF base.

Training happens in torch (PEFT); serving happens in llama.cpp. A LoRA adapter is
two small matrices per adapted weight, ``W' = W + (alpha / r) · B·A``, so moving it
across is a renaming plus two details of the llama.cpp format:

- tensor names follow GGUF's (``blk.3.attn_q.weight.lora_a``); the ``gguf`` package's
  own name map translates them, for any architecture it knows;
- for the llama architecture, llama.cpp's converter permutes the rows of the Q and K
  projections (it interleaves the two halves of each head for its RoPE kernel). The
  base GGUF holds permuted weights, so the adapter's B matrices of Q and K (whose
  rows are output features) must be permuted the same way. A has input features as
  rows of its transpose and stays as is.

The scale is carried as ``adapter.lora.alpha``; llama.cpp applies ``alpha / r``.
PEFT's rank-stabilized variant (``use_rslora``: ``alpha / sqrt(r)``) is folded in.

(llama.cpp ships a converter script, but not in any package installable here, and
it would need the base model's HF folder; this does the same from the PEFT folder.)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from dialoop.errors import InvalidInputError

__all__ = ["export_lora_gguf"]

_PEFT_NAME = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.weight)?$")
# Architectures whose GGUF conversion permutes Q/K rows (llama.cpp's LlamaModel family).
_PERMUTED_QK = {"llama"}


def export_lora_gguf(peft_dir: Path, out: Path, *, base_gguf: Path) -> Path:
    """Write ``peft_dir``'s LoRA adapter as a GGUF LoRA for ``base_gguf``; return ``out``."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((peft_dir / "adapter_config.json").read_text())
    rank = int(config["r"])
    scaling = config["lora_alpha"] / (math.sqrt(rank) if config.get("use_rslora") else rank)
    base = _base_facts(base_gguf)
    names = gguf.get_tensor_name_map(base["arch_enum"], base["n_blocks"])

    tensors = load_file(str(peft_dir / "adapter_model.safetensors"))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        m = _PEFT_NAME.match(key)
        if m is None:
            raise InvalidInputError(
                f"{peft_dir}: {key} is not a LoRA weight; only plain LoRA adapters "
                "(no modules_to_save, no DoRA) can be exported to llama.cpp."
            )
        pairs.setdefault(m["module"], {})[m["ab"]] = value.astype(np.float32)

    writer = gguf.GGUFWriter(str(out), base["arch"])
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(scaling * rank))
    for module, ab in sorted(pairs.items()):
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None or set(ab) != {"A", "B"}:
            raise InvalidInputError(f"{peft_dir}: cannot map LoRA weights of {module} to GGUF.")
        a, b = ab["A"], ab["B"]  # A: (r, in), B: (out, r)
        if base["arch"] in _PERMUTED_QK and module.endswith(("q_proj", "k_proj")):
            heads = base["n_head"] if module.endswith("q_proj") else base["n_head_kv"]
            b = _permute_rows(b, heads)
        writer.add_tensor(target + ".lora_a", np.ascontiguousarray(a))
        writer.add_tensor(target + ".lora_b", np.ascontiguousarray(b))
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order: within each head, interleave the two rotary halves."""
    out_features = w.shape[0]
    head_dim = out_features // n_head
    # (n_head, 2, head_dim/2, …) → swap the "half" and "position in half" axes
    return (
        w.reshape(n_head, 2, head_dim // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def _base_facts(base_gguf: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))

    def field(key: str):  # type: ignore[no-untyped-def]
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    arch = field("general.architecture")
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None:
        raise InvalidInputError(f"{base_gguf}: unknown architecture {arch!r}.")
    return {
        "arch": arch,
        "arch_enum": arch_enum,
        "n_blocks": int(field(f"{arch}.block_count")),
        "n_head": int(n_head := field(f"{arch}.attention.head_count")),
        "n_head_kv": int(field(f"{arch}.attention.head_count_kv") or n_head),
    }
