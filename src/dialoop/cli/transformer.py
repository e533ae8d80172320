"""``dialoop transformer attention``: look inside a model (see dialoop/transformer/maps.py)."""

from __future__ import annotations

from pathlib import Path

import click

from dialoop.cli import settings_from
from dialoop.errors import InvalidInputError

__all__ = ["transformer"]


@click.group()
def transformer() -> None:
    """Look inside a Transformer: attention maps of any local model."""


@transformer.command()
@click.argument("text")
@click.option("--model", default=None,
              help="A model name, GGUF file or transformers folder (default: the configured "
                   "model, the bundled SmolLM2 unless set).")
@click.option("--layer", type=int, default=-1, show_default=True,
              help="Layer to draw (negative counts from the last).")
@click.option("--head", type=click.IntRange(0), default=None,
              help="Head to draw (default: the mean of the layer's heads).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("attention.png"), show_default=True, help="PNG file to write.")
@click.pass_context
def attention(ctx: click.Context, text: str, model: str | None, layer: int,
              head: int | None, output: Path) -> None:
    """Draw which tokens of TEXT each token attends to, as a heat map."""
    from dialoop.transformer.maps import attention_maps, plot_attention

    if not text.strip():
        raise click.BadParameter("give a text to look at", param_hint="TEXT")
    settings = settings_from(ctx)
    maps = attention_maps(model or settings.model, text, home=settings.home)
    try:
        maps.of(layer, head)  # a layer or head the model lacks: a usage error, nothing drawn
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--layer/--head") from None
    plot_attention(maps, output, layer=layer, head=head)
    layers, heads, n = maps.weights.shape[:3]
    click.echo(f"{output}: {n} tokens, layer {layer % layers} of {layers}, "
               f"{'mean of ' + str(heads) + ' heads' if head is None else f'head {head}'}")
