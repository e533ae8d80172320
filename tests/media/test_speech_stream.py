"""Streaming speech (``stream_format`` "audio" and "sse") and the flite voices, through the
official openai client against a real server."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import wave

import openai
import pytest

from dialoop.media import voice
from tests.media.conftest import words

pytestmark = pytest.mark.slow  # Whisper hears the result back

STORY = ("The train to London leaves from platform two. Please keep the receipt in case "
         "you need a refund. The museum opens in the morning and closes in the evening.")


def _streamed(client: openai.OpenAI, on_first=None, voice: str = "alloy",  # type: ignore[no-untyped-def]
              **params) -> list[bytes]:
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice=voice, input=STORY, **params) as response:
        assert response.status_code == 200
        pieces = []
        for piece in response.iter_bytes():
            if not pieces and on_first is not None:
                on_first()
            pieces.append(piece)
        return pieces


def test_streamed_wav_is_one_playable_file_that_transcribes_back(
        client: openai.OpenAI) -> None:
    audio = b"".join(_streamed(client, response_format="wav", stream_format="audio"))
    assert audio[:4] == b"RIFF" and audio[8:16] == b"WAVEfmt "
    assert struct.unpack("<I", audio[40:44])[0] == 0xFFFFFFFF  # "length unknown"
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        samples = w.readframes(10**9)  # alloy is flite's rms: 16 kHz
    assert len(samples) == len(audio) - 44 and len(samples) / 2 / 16000 > 5  # seconds
    back = client.audio.transcriptions.create(model="whisper-1", file=("s.wav", audio))
    assert len(words(back.text) & words(STORY)) >= 0.7 * len(words(STORY)), back.text


def test_the_first_audio_arrives_before_the_last_sentence_is_made(
        client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    first_arrived, made = threading.Event(), []
    synthesise = voice._synthesise

    def recording(text: str, name: str, speed: float) -> bytes:
        if text.startswith("The museum"):  # the last sentence waits for the first audio
            made.append(("last sentence made after the first audio arrived",
                         first_arrived.wait(timeout=20)))
        return synthesise(text, name, speed)

    monkeypatch.setattr(voice, "_synthesise", recording)
    pieces = _streamed(client, on_first=first_arrived.set, response_format="wav",
                       stream_format="audio")
    assert made == [("last sentence made after the first audio arrived", True)]
    assert len(pieces) >= 2


@pytest.mark.parametrize("name", ["alloy", "en-gb+f3"])  # flite, espeak-ng
def test_sse_sends_one_delta_per_sentence_then_done(client: openai.OpenAI, name: str) -> None:
    body = b"".join(_streamed(client, voice=name, response_format="pcm",
                              stream_format="sse")).decode()
    events = [json.loads(line.removeprefix("data: ")) for line in body.splitlines()
              if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 3 + ["speech.audio.done"]
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 24000 > 5  # 16-bit samples at 24 kHz
    assert events[-1]["usage"]["total_tokens"] == 0


def test_mp3_streams_and_opus_comes_whole(client: openai.OpenAI) -> None:
    mp3 = b"".join(_streamed(client, response_format="mp3", stream_format="audio"))
    assert mp3[:2] == b"\xff\xf3" or mp3[:2] == b"\xff\xfb"  # an MP3 frame, no ID3 tag
    back = client.audio.transcriptions.create(model="whisper-1", file=("s.mp3", mp3))
    assert len(words(back.text) & words(STORY)) >= 0.7 * len(words(STORY)), back.text
    opus = b"".join(_streamed(client, response_format="opus", stream_format="audio"))
    assert opus[:4] == b"OggS"


def test_a_bad_streamed_request_is_still_an_http_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="No voice 'klingon'"):
        client.audio.speech.create(model="tts-1", voice="klingon", input="Hi",  # type: ignore[arg-type]
                                   stream_format="audio")


def test_a_flite_voice_speaks_and_is_heard(client: openai.OpenAI) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="flite:slt", input=STORY,
                                       response_format="wav")
    with wave.open(io.BytesIO(audio.content)) as w:
        assert w.getframerate() == 16000 and w.getnframes() / 16000 > 5
    back = client.audio.transcriptions.create(model="whisper-1", file=("f.wav", audio.content))
    assert len(words(back.text) & words(STORY)) >= 0.7 * len(words(STORY)), back.text


@pytest.mark.parametrize("name", ["flite:/etc/passwd", "flite:http://example.com/v.flitevox",
                                  "flite:awb_time"])
def test_only_flites_own_voices_are_passed_to_it(client: openai.OpenAI, name: str) -> None:
    with pytest.raises(openai.BadRequestError, match="No voice"):
        client.audio.speech.create(model="tts-1", voice=name, input="Hi")


def test_speed_changes_a_flite_voices_length() -> None:
    normal = voice.speak("Please book a table for two.", "flite:kal", 1.0)
    fast = voice.speak("Please book a table for two.", "flite:kal", 2.0)
    assert len(fast) < 0.65 * len(normal)


@pytest.mark.parametrize(("text", "pieces"), [
    ("One. Two? Three!\nFour", ["One.", "Two?", "Three!", "Four"]),
    ("Hello. ... World", ["Hello. ...", "World"]),  # "..." alone would make no sound
    ("... Hi.", ["... Hi."]),
    ("It opens at 8:30 today.", ["It opens at 8:30 today."]),
])
def test_text_is_cut_into_sentences_that_each_make_sound(text: str, pieces: list[str]) -> None:
    assert voice.sentences(text) == pieces
    assert all(list(voice.speak_stream(p)) for p in pieces)
