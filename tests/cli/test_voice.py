"""`dialoop chat --voice` and `dialoop ask --speak`: audio files in, spoken answers out."""

from __future__ import annotations

import array
import functools
import json
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.assistant import Assistant, open_assistant
from dialoop.cli import cli
from dialoop.cli import voice as cli_voice
from dialoop.cli.chat import Repl
from dialoop.errors import InvalidInputError
from tests.fakes import ScriptedEngine
from tests.media.conftest import spoken, words
from tests.serve import conftest as serve_fixtures

bot = serve_fixtures.bot  # the assistant whose scripted model answers "You said: …"


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def _samples(level: int, tenths: int) -> list[bytes]:
    """``tenths`` tenths of a second of 16-bit samples alternating ±``level``."""
    one = array.array("h", [level, -level] * (cli_voice.RATE // 20)).tobytes()
    return [one] * tenths


def test_recording_stops_after_a_second_of_silence() -> None:
    chunks = [*_samples(0, 5), *_samples(4000, 12), *_samples(0, 15), *_samples(4000, 5)]
    kept = cli_voice.until_silence(chunks)
    # the silence before the first word is left out; the speech and the second after it kept
    assert len(kept) == len(b"".join(_samples(0, 22)))
    assert cli_voice.until_silence(_samples(0, 400)) == b""  # nobody spoke: nothing, at 30 s


def test_a_line_naming_an_audio_file_is_audio(tmp_path: Path) -> None:
    wav = tmp_path / "q.wav"
    wav.write_bytes(spoken("hello"))
    assert cli_voice.audio_file(f" '{wav}' ") == wav
    assert cli_voice.audio_file("What is a wav file?") is None
    with pytest.raises(InvalidInputError, match="No audio file"):
        cli_voice.audio_file(str(tmp_path / "missing.mp3"))


@pytest.mark.slow  # loads Whisper (seconds)
def test_voice_chat_answers_an_audio_file_in_speech(bot: Assistant, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    question = tmp_path / "question.wav"
    question.write_bytes(spoken("What time do you open on Saturday?"))
    repl = Repl(bot, bot.session("voice"), voice=True, modality="speech")
    repl.handle(str(question))
    out = capsys.readouterr().out
    assert "(heard: " in out and "You said:" not in out  # speech only: the text is not printed
    reply = repl.last_reply
    assert reply is not None and {"open", "saturday"} <= words(reply.text)
    answer = bot.settings.home / "voice" / f"answer-{reply.turn_id}.wav"
    assert f"(spoken: {answer})" in out and _seconds(answer) > 1
    [user] = [t for t in bot.parts.sessions.turns(repl.session) if t.id == reply.user_turn_id]
    assert user.trace["audio"]["language"] == "en" and user.trace["audio"]["seconds"] > 1
    repl.handle("And on Sunday?")  # typing still works in a voice session
    assert "(heard: " not in capsys.readouterr().out


def test_voice_chat_without_a_microphone_says_so(bot: Assistant, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_voice, "has_microphone", lambda: False)
    repl = Repl(bot, bot.session("voice"), voice=True, modality="both")
    repl._voice_banner()
    assert "no microphone was found" in capsys.readouterr().out
    repl.handle("")  # an empty line records only with a microphone
    assert repl.last_reply is None


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dialoop ask` answers with the scripted model ("You said: …")."""
    engine = ScriptedEngine(lambda prompt, adapter: f"You said: {prompt}")
    monkeypatch.setattr("dialoop.cli.chat.open_assistant",
                        functools.partial(open_assistant, engine=engine))


def test_ask_speak_writes_the_spoken_answer(scripted: None, tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    result = CliRunner().invoke(cli, ["ask", "Hello there", "--speak", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out) and _seconds(out) > 0.5
    both = CliRunner().invoke(cli, ["ask", "Hello", "--modality", "both", "--json"])
    data = json.loads(both.stdout)
    assert data["answer"] == "You said: Hello" and Path(data["audio"]).is_file()


def test_the_answer_modality_setting_and_its_override(scripted: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_ANSWER_MODALITY", "speech")
    spoken_answer = CliRunner().invoke(cli, ["ask", "Hello"])
    assert spoken_answer.exit_code == 0 and spoken_answer.stdout.strip().endswith(".wav")
    typed = CliRunner().invoke(cli, ["ask", "Hello", "--modality", "text"])
    assert typed.stdout.strip() == "You said: Hello"


@pytest.mark.parametrize(("args", "message"), [
    (["ask", "Hi", "-o", "a.wav"], "add --speak"),
    (["ask", "Hi", "--speak", "--modality", "text"], "--speak means --modality speech"),
])
def test_bad_speech_options_are_refused(scripted: None, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.slow  # loads Whisper (seconds)
def test_chat_voice_takes_an_audio_file_from_the_command_line(
        scripted: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_voice, "has_microphone", lambda: False)
    question = tmp_path / "question.wav"
    question.write_bytes(spoken("What time do you open on Saturday?"))
    result = CliRunner().invoke(cli, ["chat", "--voice", "--modality", "both"],
                                input=f"{question}\n/quit\n")
    assert result.exit_code == 0, result.output
    assert "no microphone was found" in result.stdout
    assert "(heard: " in result.stdout and "You said: " in result.stdout  # both: the text too
    assert "(spoken: " in result.stdout and ".wav)" in result.stdout
