"""/v1/audio/transcriptions, /translations and /speech through the official openai client,
against a real server."""

from __future__ import annotations

import io
import wave

import httpx
import openai
import pytest

from dialoop.serve.server import RunningServer
from tests.media.conftest import spoken, words

pytestmark = pytest.mark.slow

SENTENCE = "The museum opens in the morning and closes in the evening."


def test_a_transcription_is_close_to_what_was_said(client: openai.OpenAI) -> None:
    got = client.audio.transcriptions.create(model="whisper-1",
                                             file=("q.wav", spoken(SENTENCE), "audio/wav"))
    assert len(words(got.text) & words(SENTENCE)) >= 0.7 * len(words(SENTENCE)), got.text
    # every text format carries the same words
    text = client.audio.transcriptions.create(model="whisper-1", response_format="text",
                                              file=("q.wav", spoken(SENTENCE)))
    assert words(text) == words(got.text)
    srt = client.audio.transcriptions.create(model="whisper-1", response_format="srt",
                                             file=("q.wav", spoken(SENTENCE)))
    assert srt.startswith("1\n00:00:00,000 --> ")
    verbose = client.audio.transcriptions.create(
        model="whisper-1", response_format="verbose_json", language="en",
        file=("q.wav", spoken(SENTENCE)))
    assert verbose.language == "english" and verbose.duration > 2
    assert verbose.segments and verbose.segments[0].text.strip()


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client's own mark
def test_a_translation_of_english_speech_is_its_transcript(client: openai.OpenAI) -> None:
    got = client.audio.translations.create(model="whisper-1", file=("q.wav", spoken(SENTENCE)))
    assert len(words(got.text) & words(SENTENCE)) >= 0.7 * len(words(SENTENCE)), got.text


def test_speech_is_a_valid_wav_that_transcribes_back(client: openai.OpenAI) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE,
                                       response_format="wav")
    with wave.open(io.BytesIO(audio.content)) as w:
        seconds = w.getnframes() / w.getframerate()
        assert w.getnchannels() == 1 and 2 < seconds < 10
    back = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio.content))
    assert len(words(back.text) & words(SENTENCE)) >= 0.7 * len(words(SENTENCE)), back.text


def test_mp3_is_the_default_as_at_openai(client: openai.OpenAI) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="nova", input="Hello there.")
    assert audio.response.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize(("file", "extra", "message"), [
    (("empty.wav", b""), {}, "empty"),
    (("notes.txt", b"plain text, not a recording " * 20), {}, "Cannot read this audio"),
    (("q.wav", None), {"language": "de"}, "English only"),
])
def test_bad_uploads_get_a_400_that_says_why(client: openai.OpenAI, file, extra, message) -> None:  # type: ignore[no-untyped-def]
    name, data = file
    with pytest.raises(openai.BadRequestError, match=message) as err:
        client.audio.transcriptions.create(model="whisper-1", file=(name, spoken("Hallo") if data is None else data),
                                           **extra)
    assert err.value.status_code == 400


def test_bad_speech_requests_get_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="No voice 'klingon'"):
        client.audio.speech.create(model="tts-1", voice="klingon", input="Hi")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="Cannot make 'm4a'"):
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi",
                                   response_format="m4a")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.audio.speech.create(model="elevenlabs", voice="alloy", input="Hi")


def test_an_upload_from_another_site_is_refused(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/v1/audio/transcriptions",
                          headers={"Origin": "https://evil.example"},
                          data={"model": "whisper-1"}, files={"file": ("q.wav", b"RIFF")})
    assert response.status_code == 403
    json_body = httpx.post(f"{server.url}/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert json_body.status_code == 415 and "multipart/form-data" in json_body.text
