"""`dialoop speak` and `dialoop transcribe`, through click's runner."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from tests.media.conftest import words

pytestmark = pytest.mark.slow  # loads Whisper (seconds)

SENTENCE = "The weather today is sunny with a light breeze from the west."


def test_speak_then_transcribe_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    said = CliRunner().invoke(cli, ["speak", SENTENCE, "-o", str(out), "--voice", "fable"])
    assert said.exit_code == 0, said.output
    with wave.open(str(out)) as w:
        assert w.getnframes() > w.getframerate()  # over a second of sound
    heard = CliRunner().invoke(cli, ["transcribe", str(out)])
    assert heard.exit_code == 0, heard.output
    assert len(words(heard.output) & words(SENTENCE)) >= 0.7 * len(words(SENTENCE)), heard.output
    as_json = json.loads(CliRunner().invoke(cli, ["transcribe", str(out), "--format", "json"]).output)
    assert as_json["language"] == "en" and as_json["segments"]
    srt = CliRunner().invoke(cli, ["transcribe", str(out), "--format", "srt"]).output
    assert srt.startswith("1\n00:00:00,000 --> ")


def test_bad_arguments_fail_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["transcribe", str(empty)])
    assert result.exit_code != 0 and "empty" in str(result.exception)
    result = CliRunner().invoke(cli, ["speak", "hi", "-o", str(tmp_path / "x.txt")])
    assert result.exit_code != 0 and "name a .wav file" in str(result.exception)
