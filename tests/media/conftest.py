"""Audio and images that the tests make themselves (espeak-ng, Pillow), and a real server
around a scripted model."""

from __future__ import annotations

import base64
import io
import subprocess
from collections.abc import Iterator

import openai
import pytest
from PIL import Image, ImageDraw, ImageFont

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server
from tests.integration.openai_clients import official
from tests.serve import conftest as serve_fixtures

bot = serve_fixtures.bot  # the assistant whose scripted model answers "You said: …"

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def spoken(text: str, voice: str = "en-us") -> bytes:
    """``text`` said by espeak-ng, as WAV bytes (straight from the program)."""
    return subprocess.run(["espeak-ng", "-v", voice, "--stdout"], input=text.encode(),
                          capture_output=True, check=True).stdout


def rendered(text: str, size: int = 28, width: int = 900) -> bytes:
    """``text`` drawn black on white in DejaVu Sans, as PNG bytes."""
    font = ImageFont.truetype(FONT, size)
    lines = text.count("\n") + 1
    image = Image.new("RGB", (width, 40 + lines * int(size * 1.5)), "white")
    ImageDraw.Draw(image).multiline_text((20, 20), text, font=font, fill="black", spacing=12)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def words(text: str) -> set[str]:
    return {w.strip(".,!?;:'\"").lower() for w in text.split()} - {""}


@pytest.fixture
def server(bot: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(bot)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return official(server.url)
