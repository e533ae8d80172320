"""Bottleneck adapters (Houlsby et al. 2019): ``h + up(gelu(down(h)))`` after every
block's MLP, and their files.

**Why this is written here.** PEFT (0.21) has no bottleneck-adapter type, and a new
type cannot be registered with it (``register_peft_method`` only accepts names already
in its ``PeftType`` enum); the maintained library that has one (``adapters``) brings
its own model classes. A Houlsby adapter is a few lines: a down-projection to
``bottleneck`` features, a nonlinearity, an up-projection back, added to its input; the
up-projection starts at zero so the adapted model starts as the base model.

Training puts one adapter on each MLP as a submodule (``…mlp.bottleneck``), so the
weights are named after the model's own modules; the torch engine keeps several
adapters' weights apart and applies the one a request names
(:class:`BottleneckSet`). A folder holds ``bottleneck_config.json`` and
``bottleneck.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dialoop.errors import InvalidInputError

__all__ = ["BOTTLENECK_CONFIG", "BOTTLENECK_WEIGHTS", "BottleneckAdapter", "BottleneckSet",
           "is_bottleneck_folder", "mlp_modules", "read_bottleneck"]

BOTTLENECK_CONFIG = "bottleneck_config.json"
BOTTLENECK_WEIGHTS = "bottleneck.safetensors"
SUFFIX = ".bottleneck."  # in the weights' names: "model.layers.0.mlp.bottleneck.down.weight"


class BottleneckAdapter(nn.Module):
    """``h + up(gelu(down(h)))``: a residual bottleneck MLP, the identity when created."""

    def __init__(self, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)  # start as the base model: a zero update
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # h: (B, T, C)
        return h + self.up(nn.functional.gelu(self.down(h)))


def mlp_modules(model: Any) -> dict[str, nn.Module]:
    """The model's MLPs by name ("model.layers.0.mlp"): where the adapters go."""
    mlps = {name: m for name, m in model.named_modules() if name.endswith(".mlp")}
    if not mlps:
        raise InvalidInputError("The model has no '.mlp' modules to put bottleneck adapters on.")
    return mlps


def is_bottleneck_folder(folder: Path) -> bool:
    return (folder / BOTTLENECK_CONFIG).is_file()


def read_bottleneck(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, weights) of the bottleneck adapter saved in ``folder``."""
    from safetensors.torch import load_file

    if not is_bottleneck_folder(folder):
        raise InvalidInputError(f"{folder} holds no bottleneck adapter ({BOTTLENECK_CONFIG}).")
    config = json.loads((folder / BOTTLENECK_CONFIG).read_text())
    return config, load_file(str(folder / BOTTLENECK_WEIGHTS))


class BottleneckSet:
    """Several bottleneck adapters on one model, at most one active at a time.

    A forward hook on every MLP applies the active adapter's module for that MLP; with
    none active the hooks return the MLP's output unchanged, so the model is the base.
    """

    def __init__(self, model: Any) -> None:
        self._mlps = mlp_modules(model)
        self._hidden = int(model.config.hidden_size)
        self._adapters: dict[str, dict[str, BottleneckAdapter]] = {}
        self.active: str | None = None
        for name, mlp in self._mlps.items():
            mlp.register_forward_hook(self._hook(name))

    def _hook(self, mlp_name: str) -> Any:
        def apply(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            if self.active is None:
                return out
            return self._adapters[self.active][mlp_name](out)
        return apply

    def add(self, name: str, folder: Path) -> None:
        """Load the adapter saved in ``folder`` as ``name`` (replacing one of that name)."""
        config, weights = read_bottleneck(folder)
        if int(config.get("hidden_size", self._hidden)) != self._hidden:
            raise InvalidInputError(f"{folder}: the bottleneck adapter does not fit this model "
                                    f"(hidden size {config['hidden_size']}, not {self._hidden}).")
        modules = {m: BottleneckAdapter(self._hidden, int(config["bottleneck"]))
                   for m in self._mlps}
        for mlp_name, module in modules.items():
            prefix = mlp_name + SUFFIX
            own = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(own)
            except RuntimeError:  # missing or mis-shaped tensors
                raise InvalidInputError(
                    f"{folder}: the bottleneck adapter does not fit this model.") from None
            module.requires_grad_(False).eval()
        self._adapters[name] = modules

    def remove(self, name: str) -> None:
        self._adapters.pop(name, None)
        if self.active == name:
            self.active = None

    def __contains__(self, name: object) -> bool:
        return name in self._adapters

    def names(self) -> list[str]:
        return list(self._adapters)
