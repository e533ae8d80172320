"""The parameter-efficient fine-tuning methods of ``dialoop train sft --method``.

Each method freezes the base model and trains a few parameters of its own:

| method    | trains                                                    | serves on           |
|-----------|-----------------------------------------------------------|---------------------|
| lora      | two matrices per projection, ``W + (alpha/r)·B·A``        | llama.cpp and torch |
| adalora   | LoRA as ``B·diag(E)·A``, pruning the least important ranks | llama.cpp and torch |
| ia3       | one scaling vector per adapted projection (keys, values, MLP) | torch engine     |
| prefix    | key/value vectors of ``N`` virtual tokens in every layer  | torch engine        |
| prompt    | input embeddings of ``N`` virtual tokens                  | torch engine        |
| adapter   | a bottleneck MLP after each block's MLP (Houlsby et al.)  | torch engine        |
| full      | every weight                                              | torch engine (folder) |

The PEFT methods are registered in the adapter store (``SERVED_METHODS``): that is
what dialoop's engines load by name. Only the LoRA family also gets a llama.cpp form;
prefix and prompt adapters fill the torch engine's KV cache with their virtual tokens
before the prompt (:func:`dialoop.engine.torch.prefill_virtual_tokens`).

All but ``adapter`` are PEFT's own (``LoraConfig``, ``AdaLoraConfig``, ``IA3Config``,
``PrefixTuningConfig``, ``PromptTuningConfig``). An AdaLoRA adapter is saved a second
time as the plain LoRA it equals (``A' = diag(E)·A``, the scale folded into ``B``), so
it registers, exports to GGUF and serves like any LoRA.

The bottleneck adapter is dialoop's own (PEFT has none: why, in
:mod:`dialoop.engine.bottleneck`). It is saved in a format of its own
(``bottleneck_config.json``, ``bottleneck.safetensors``), registered in the adapter store
like the PEFT kinds and served by the torch engine; :func:`load_bottleneck` puts it on
any transformers model.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from dialoop.engine.bottleneck import (
    BOTTLENECK_CONFIG,
    BOTTLENECK_WEIGHTS,
    BottleneckAdapter,
    mlp_modules,
    read_bottleneck,
)
from dialoop.errors import InvalidInputError
from dialoop.train.chat_data import IGNORE
from dialoop.train.packing import PackedRow, Tokenized

__all__ = [
    "ALL_PROJECTIONS", "DEFAULT_TARGETS", "GGUF_METHODS", "METHODS", "PROMPT_METHODS",
    "SERVED_METHODS", "describe",
    "BottleneckAdapter", "add_bottleneck", "adalora_as_lora", "after_step", "load_bottleneck",
    "make_trainable", "method_parameters", "regularizer", "save_method", "serving_note",
    "unpacked_rows",
]

METHODS = ("lora", "adalora", "ia3", "prefix", "prompt", "adapter", "full")
GGUF_METHODS = ("lora", "adalora")  # export to llama.cpp's GGUF LoRA
# Registered in the adapter store: adapters some engine of dialoop can load by name.
SERVED_METHODS = ("lora", "adalora", "ia3", "prefix", "prompt", "adapter")
PROMPT_METHODS = ("prefix", "prompt")  # virtual tokens before every dialogue: no packing
# The projections engine/lora.py can export to llama.cpp (attention and MLP).
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# IA³ scales keys, values and the MLP's inner activations (Liu et al. 2022, PEFT's default).
DEFAULT_TARGETS = {"lora": ALL_PROJECTIONS, "adalora": ALL_PROJECTIONS,
                   "ia3": ("k_proj", "v_proj", "down_proj")}
_FEEDFORWARD = ("gate_proj", "up_proj", "down_proj")
# The names a method's own parameters carry (what training may change).
_OWN = {"lora": ("lora_",), "adalora": ("lora_",), "ia3": ("ia3_",),
        "prefix": ("prompt_encoder.",), "prompt": ("prompt_encoder.",),
        "adapter": (".bottleneck.",), "full": ("",)}


def serving_note(method: str) -> str:
    """Where a trained result of ``method`` can answer, in one sentence for users."""
    if method in GGUF_METHODS:
        return ("LoRA form: serves on llama.cpp (GGUF LoRA, the default engine, when the base "
                "model has a GGUF file) and on the torch engine.")
    if method in ("ia3", "prefix", "prompt", "adapter"):
        kind = {"ia3": "a PEFT IA3", "prefix": "a PEFT prefix-tuning",
                "prompt": "a PEFT prompt-tuning", "adapter": "a bottleneck"}[method]
        return (f"{kind} adapter: serves on the torch engine only (--engine torch); "
                "llama.cpp cannot load it.")
    if method == "full":
        return "a whole model folder: serves on the torch engine only (--engine torch --model)."
    raise InvalidInputError(f"Unknown method {method!r}.")


def describe(config: dict[str, Any]) -> str:
    """The method and its size in a few words, from a run's ``config.json`` form."""
    method, c = config["method"], config
    targets = ", ".join(c.get("target_modules") or ())
    return {
        "lora": f"LoRA r={c['lora_r']} alpha={c['lora_alpha']} dropout={c['lora_dropout']} "
                f"on {targets}",
        "adalora": f"AdaLoRA from r={math.ceil(1.5 * c['lora_r'])} pruned to r={c['lora_r']} "
                   f"on average, alpha={c['lora_alpha']}, on {targets}",
        "ia3": f"IA3 scaling vectors on {targets}",
        "prefix": f"prefix tuning, {c['virtual_tokens']} virtual tokens",
        "prompt": f"prompt tuning, {c['virtual_tokens']} virtual tokens",
        "adapter": f"bottleneck adapters of {c['bottleneck']} features after each MLP",
        "full": "full fine-tuning",
    }[method]


def method_parameters(name: str, method: str) -> bool:
    """Whether the parameter ``name`` belongs to ``method`` (is one it trains)."""
    return any(mark in name for mark in _OWN[method])


# -- making a model trainable -------------------------------------------------------------


def make_trainable(model: Any, config: Any, total_steps: int) -> Any:
    """``model`` with ``config.method``'s parameters added and trainable, the rest frozen."""
    if config.method == "full":
        model.requires_grad_(True)
        return model
    if config.method == "adapter":
        return add_bottleneck(model, config.bottleneck)
    from peft import get_peft_model

    if config.method in DEFAULT_TARGETS:
        _check_targets(model, config.target_modules)
    with warnings.catch_warnings():
        # PEFT calls a transformers method that transformers now marks deprecated: not ours.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        return get_peft_model(model, _peft_config(config, total_steps))


def _peft_config(config: Any, total_steps: int) -> Any:
    import peft

    targets = list(config.target_modules)
    if config.method == "lora":
        return peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                               lora_dropout=config.lora_dropout, target_modules=targets,
                               task_type="CAUSAL_LM")
    if config.method == "adalora":
        # Start at 1.5x the rank and prune to --rank on average: the ranks go where the
        # importance scores say. No pruning for the first 10% of steps, none in the last 20%.
        tinit, tfinal = total_steps // 10, total_steps // 5
        return peft.AdaLoraConfig(
            init_r=math.ceil(1.5 * config.lora_r), target_r=config.lora_r,
            lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=targets, total_step=total_steps, tinit=tinit, tfinal=tfinal,
            deltaT=max(1, total_steps // 20), task_type="CAUSAL_LM",
        )
    if config.method == "ia3":
        return peft.IA3Config(target_modules=targets,
                              feedforward_modules=[m for m in targets if m in _FEEDFORWARD],
                              task_type="CAUSAL_LM")
    if config.method == "prefix":
        return peft.PrefixTuningConfig(num_virtual_tokens=config.virtual_tokens,
                                       task_type="CAUSAL_LM")
    # Prompt tuning from random vectors of the embedding's own scale (real tokens'
    # embeddings) trains much better than from N(0, 1).
    return peft.PromptTuningConfig(num_virtual_tokens=config.virtual_tokens,
                                   prompt_tuning_init=peft.PromptTuningInit.SAMPLE_VOCAB,
                                   task_type="CAUSAL_LM")


def _check_targets(model: Any, targets: tuple[str, ...]) -> None:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in targets if m not in present]
    if missing:
        raise InvalidInputError(
            f"The model has no modules named {', '.join(missing)}; its linear layers include "
            f"{', '.join(sorted(m for m in present if m.endswith('proj'))) or 'none'}."
        )


# -- what the training loop asks of a method ---------------------------------------------


def unpacked_rows(sequences: list[Tokenized], method: str, virtual_tokens: int) -> list[PackedRow]:
    """One dialogue per row, for the prompt methods: their virtual tokens must come before
    every dialogue, as they will when serving, so dialogues cannot share a row.

    Prompt tuning puts its ``N`` virtual tokens in front of the input, so the model's
    output positions are shifted by ``N``: the targets get ``N`` leading IGNOREs so that
    ``row_loss`` keeps (``logits_to_keep``) the right positions. Prefix tuning puts its
    tokens in the keys and values only; PEFT shifts the position ids itself.
    """
    shift = virtual_tokens if method == "prompt" else 0
    return [
        PackedRow(input_ids=torch.tensor([s.input_ids]),
                  position_ids=torch.arange(len(s.input_ids))[None],  # (1, T)
                  targets=torch.tensor([IGNORE] * shift + s.targets),  # (N + T,)
                  n_dialogues=1)
        for s in sequences
    ]


def regularizer(model: Any, method: str) -> torch.Tensor | None:
    """AdaLoRA's orthogonality penalty on P and Q (``||PᵀP − I||_F``), which PEFT adds
    only when the model computes the loss itself; this loop computes its own."""
    if method != "adalora":
        return None
    config = model.peft_config["default"]
    terms = []
    for name, p in model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and p.requires_grad:
            cov = p @ p.T if "lora_A" in name else p.T @ p  # (r, r)
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0]), ord="fro"))
    return config.orth_reg_weight * torch.stack(terms).mean() if terms else None


def after_step(model: Any, method: str, step: int) -> None:
    """After the optimizer step, before the gradients are cleared: AdaLoRA scores each
    rank's importance from the gradients and prunes to its budget."""
    if method == "adalora":
        model.base_model.update_and_allocate(step)


# -- saving -----------------------------------------------------------------------------


def save_method(model: Any, folder: Path, method: str) -> None:
    """Write what ``method`` trained into the (new, empty) ``folder``."""
    if method == "adapter":
        _save_bottleneck(model, folder)
    elif method == "adalora":
        model.save_pretrained(str(folder / "adalora"))  # PEFT's own form, ranks pruned
        adalora_as_lora(model, folder)  # the form that registers and serves
    else:
        model.save_pretrained(str(folder))


def adalora_as_lora(model: Any, folder: Path) -> Path:
    """Write the plain LoRA adapter equal to ``model``'s AdaLoRA one.

    AdaLoRA computes ``ΔW·x = B·(A ⊙ E)·x · s / ranknum`` with ``E`` the singular values,
    zero for pruned ranks. As LoRA: ``A' = A ⊙ E`` (r, in) and ``B' = B · s / ranknum``
    (out, r), with ``lora_alpha = r`` so LoRA's own scale ``alpha / r`` is 1.
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    targets: set[str] = set()
    rank = 0
    for name, module in model.named_modules():
        if not hasattr(module, "lora_E") or "default" not in module.lora_E:
            continue
        a, e, b = (module.lora_A["default"], module.lora_E["default"],
                   module.lora_B["default"])  # (r, in), (r, 1), (out, r)
        scale = module.scaling["default"] / (module.ranknum["default"].item() + 1e-5)
        tensors[f"{name}.lora_A.weight"] = (a * e).detach().float().contiguous()
        tensors[f"{name}.lora_B.weight"] = (b * scale).detach().float().contiguous()
        targets.add(name.rsplit(".", 1)[-1])
        rank = a.shape[0]
    assert tensors, "adalora_as_lora needs a model with AdaLoRA layers"
    folder.mkdir(parents=True, exist_ok=True)
    LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=sorted(targets),
               task_type="CAUSAL_LM").save_pretrained(str(folder))
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


# -- the bottleneck adapter ----------------------------------------------------------------


def add_bottleneck(model: Any, bottleneck: int) -> Any:
    """Freeze ``model`` and put a trainable adapter on the output of every block's MLP.

    The adapter is a submodule of the MLP (``…mlp.bottleneck``) applied by a forward
    hook, so the base model's own parameter names do not change.
    """
    model.requires_grad_(False)
    hidden = model.config.hidden_size
    for mlp in mlp_modules(model).values():
        mlp.bottleneck = BottleneckAdapter(hidden, bottleneck)
        mlp.register_forward_hook(lambda module, args, out: module.bottleneck(out))
    model.bottleneck_size = bottleneck  # read back when saving
    return model


def _save_bottleneck(model: Any, folder: Path) -> None:
    from safetensors.torch import save_file

    weights = {n: p.detach().contiguous() for n, p in model.named_parameters()
               if ".bottleneck." in n}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / BOTTLENECK_WEIGHTS))
    (folder / BOTTLENECK_CONFIG).write_text(json.dumps({
        "method": "bottleneck adapter (Houlsby et al. 2019), after each MLP",
        "bottleneck": model.bottleneck_size, "hidden_size": model.config.hidden_size,
        "activation": "gelu", "serves_on": "torch engine",
    }, indent=1))


def load_bottleneck(model: Any, folder: Path) -> Any:
    """Put the bottleneck adapters saved in ``folder`` on ``model`` (frozen, for answering)."""
    config, weights = read_bottleneck(folder)
    add_bottleneck(model, int(config["bottleneck"]))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(".bottleneck." in n for n in missing):
        raise InvalidInputError(f"{folder}: the bottleneck adapter does not fit this model.")
    model.requires_grad_(False)
    return model
