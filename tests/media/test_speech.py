"""Speech to text and text to speech, as a library: real espeak-ng, real Whisper tiny.en."""

from __future__ import annotations

import io
import wave

import pytest

from dialoop.errors import InvalidInputError
from dialoop.media import speak, transcribe
from tests.media.conftest import spoken, words

pytestmark = pytest.mark.slow  # loads Whisper (seconds)

SENTENCE = "Please book a table for four people at seven tonight."


def _seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as w:
        return w.getnframes() / w.getframerate()


def test_speech_comes_back_as_most_of_its_words() -> None:
    heard = transcribe(spoken(SENTENCE))
    assert len(words(heard.text) & words(SENTENCE)) >= 0.7 * len(words(SENTENCE)), heard.text
    assert heard.language == "en"
    assert 0 < heard.confidence <= 1
    assert heard.segments and heard.segments[0].start < heard.segments[-1].end <= heard.duration + 0.5
    assert "-->" in heard.subtitles("srt") and heard.subtitles("vtt").startswith("WEBVTT")


def test_a_file_path_is_read_like_its_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "q.wav"
    path.write_bytes(spoken("Good morning"))
    assert "morning" in transcribe(path).text.lower()


@pytest.mark.parametrize(("audio", "message"), [
    (b"", "empty"),
    (b"this is not audio at all, just text" * 10, "Cannot read this audio"),
])
def test_bad_audio_is_refused_with_a_reason(audio: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        transcribe(audio)


def test_another_language_is_refused_not_mistranscribed() -> None:
    with pytest.raises(InvalidInputError, match="English only"):
        transcribe(spoken("Bonjour", "fr"), language="fr")


def test_speak_makes_a_wav_whose_length_follows_the_speed() -> None:
    normal = speak(SENTENCE, "alloy")
    fast = speak(SENTENCE, "nova", speed=2.0)
    with wave.open(io.BytesIO(normal)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
    assert 1.5 < _seconds(normal) < 8  # the header tells the real length
    assert _seconds(fast) < 0.75 * _seconds(normal)


def test_other_formats_are_real_files() -> None:
    assert speak("Hello", format="mp3")[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert speak("Hello", format="opus")[:4] == b"OggS"
    assert speak("Hello", format="flac")[:4] == b"fLaC"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"text": "   "}, "empty"),
    ({"text": "hi", "voice": "klingon"}, "No voice 'klingon'"),
    ({"text": "hi", "voice": "--help"}, "No voice"),
    ({"text": "hi", "format": "m4a"}, "Cannot make 'm4a'"),
    ({"text": "hi", "speed": 9.0}, "between 0.25 and 4.0"),
])
def test_bad_speech_requests_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        speak(**kwargs)
