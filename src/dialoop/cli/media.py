"""``dialoop transcribe`` and ``dialoop speak``: speech to text and back, offline
(see :mod:`dialoop.media`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dialoop.errors import InvalidInputError

__all__ = ["speak", "transcribe"]


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "srt", "vtt"]),
              default="text", show_default=True, help="What to print.")
@click.option("--language", default=None, help="The audio's language (English only).")
def transcribe(file: Path, fmt: str, language: str | None) -> None:
    """Print what is said in the audio FILE (wav, mp3, ogg, flac, webm, …)."""
    from dialoop.media import transcribe as hear

    heard = hear(file, language)
    if fmt == "json":
        click.echo(json.dumps(heard.to_dict(), ensure_ascii=False, indent=2))
    elif fmt in ("srt", "vtt"):
        click.echo(heard.subtitles(fmt), nl=False)  # type: ignore[arg-type]
    else:
        click.echo(heard.text)


@click.command()
@click.argument("text")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="The audio file to write (its suffix is the format).")
@click.option("--voice", default="alloy", show_default=True,
              help="An OpenAI voice name (alloy, nova, fable, …), an espeak-ng voice, "
                   "or flite:slt/rms/awb/kal.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="0.25 to 4.")
def speak(text: str, output: Path, voice: str, speed: float) -> None:
    """Say TEXT into the audio file -o (wav; mp3, opus, flac, aac with ffmpeg)."""
    from dialoop.media import SPEECH_FORMATS
    from dialoop.media import speak as say

    fmt = output.suffix.lower().lstrip(".") or "wav"
    if fmt == "ogg":
        fmt = "opus"
    if fmt not in SPEECH_FORMATS:
        raise InvalidInputError(f"Cannot write {output.name}: name a .wav file (or .mp3, "
                                ".opus, .flac, .aac with ffmpeg).")
    output.write_bytes(say(text, voice, speed, fmt))
    click.echo(f"Wrote {output}", err=True)
