"""Attention maps of any local causal LM: which earlier tokens each token looks at.

``attention_maps`` runs the model once over a text and returns, per layer and head, the
matrix softmax(QKᵀ/√d_k) (rows: the attending token, columns: the token attended to);
``plot_attention`` draws one head of one layer, or the mean over heads, as a heat map. A
causal model's maps are lower-triangular: token i never looks at a later token j > i.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dialoop.engine.models import resolve_model
from dialoop.errors import InvalidInputError

__all__ = ["AttentionMaps", "attention_maps", "plot_attention"]

MAX_TOKENS = 64  # a bigger map is unreadable


@dataclass(frozen=True)
class AttentionMaps:
    tokens: list[str]
    weights: torch.Tensor  # (layers, heads, T, T), each row sums to 1

    def of(self, layer: int, head: int | None) -> torch.Tensor:
        """(T, T): one head of ``layer``, or the mean of its heads (``head`` None)."""
        layers, heads = self.weights.shape[:2]
        if not -layers <= layer < layers:
            raise InvalidInputError(f"The model has {layers} layers (0–{layers - 1}): "
                                    f"no layer {layer}.")
        if head is not None and not 0 <= head < heads:
            raise InvalidInputError(f"The model has {heads} heads per layer "
                                    f"(0–{heads - 1}): no head {head}.")
        per_layer = self.weights[layer]  # (heads, T, T)
        return per_layer.mean(0) if head is None else per_layer[head]


def attention_maps(model: str, text: str, *, home: Path) -> AttentionMaps:
    """The attention weights of ``model`` (a name, a GGUF file or a transformers folder, as
    ``--model`` takes them) over ``text``."""
    from dialoop.engine.torch import load_model

    if not text.strip():
        raise InvalidInputError("Give a text to look at.")
    lm, tokenizer = load_model(resolve_model(model, home=home), home / "cache" / "models")
    lm.set_attn_implementation("eager")  # the fused kernels do not return the weights
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :MAX_TOKENS]  # (1, T)
    with torch.no_grad():
        out = lm(input_ids=ids, output_attentions=True)
    # out.attentions: one (1, heads, T, T) per layer → (layers, heads, T, T)
    weights = torch.stack([a[0] for a in out.attentions]).float()
    tokens = [tokenizer.decode([int(i)]) for i in ids[0]]
    return AttentionMaps(tokens, weights)


def plot_attention(maps: AttentionMaps, path: Path, *, layer: int = -1,
                   head: int | None = None) -> Path:
    """Write the heat map of one head (or the mean over heads) of ``layer`` to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = maps.of(layer, head).numpy()
    labels = [t.replace("\n", "⏎") or "·" for t in maps.tokens]
    size = max(4.0, 0.32 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    shown = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=float(matrix.max()) or 1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("attended to (key)")
    ax.set_ylabel("attending (query)")
    n_layers = maps.weights.shape[0]
    which = "mean of heads" if head is None else f"head {head}"
    ax.set_title(f"layer {layer % n_layers} of {n_layers}, {which}")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
