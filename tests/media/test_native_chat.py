"""POST /api/chat: a typed or spoken message, with images, answered in text or speech."""

from __future__ import annotations

import base64
import io
import wave

import httpx
import pytest

from dialoop.assistant import Assistant
from dialoop.serve.server import RunningServer
from tests.media.conftest import data_url, rendered, spoken, words
from tests.media.test_images import RECEIPT

pytestmark = pytest.mark.slow


def _post(server: RunningServer, **body) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{server.url}/api/chat", json=body, timeout=120)


def _turn(server: RunningServer, turn_id: int) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{server.url}/api/turns/{turn_id}").json()


def test_an_image_is_read_for_its_own_turn(server: RunningServer, bot: Assistant) -> None:
    res = _post(server, message="What is the total?", session="r",
                images=[data_url(rendered(RECEIPT))])
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["user_text"] == "What is the total? [image 1]"
    assert out["answer"] == "You said: What is the total? [image 1]"
    [image] = [e for e in out["evidence"] if e["kind"] == "image"]
    assert image["source"] == "image:1" and "TOTAL 6.25" in image["text"]
    trace = _turn(server, out["turn_id"])["trace"]
    assert any(e["source"] == "image:1" for e in trace["context"]["evidence"])
    assert out["audio"] is None  # answer_modality is "text" by default
    later = _post(server, message="What is the total?", session="r").json()
    assert not [e for e in later["evidence"] if e["kind"] == "image"]


def test_a_spoken_message_is_a_turn_with_its_audio_in_the_trace(server: RunningServer) -> None:
    wav = spoken("What time do you open on Saturday?")
    res = _post(server, audio="data:audio/wav;base64," + base64.b64encode(wav).decode())
    assert res.status_code == 200, res.text
    out = res.json()
    assert {"open", "saturday"} <= words(out["user_text"])
    assert out["transcript"]["language"] == "en"
    audio = _turn(server, out["user_turn_id"])["trace"]["audio"]
    assert audio["language"] == "en" and 0 < audio["confidence"] <= 1 and audio["seconds"] > 1
    assert out["audio"]["format"] == "wav"  # a spoken message is answered in speech
    with wave.open(io.BytesIO(base64.b64decode(out["audio"]["data"]))) as answer:
        assert answer.getnframes() > 0


def test_modality_text_and_speech(server: RunningServer) -> None:
    assert _post(server, message="Hello", modality="both").json()["audio"]["format"] == "wav"
    assert _post(server, message="Hello", modality="text").json()["audio"] is None


@pytest.mark.parametrize(("body", "message"), [
    ({}, "Send a message or its audio"),
    ({"message": "Hi", "audio": "data:audio/wav;base64,AAAA"}, "Send a message or its audio"),
    ({"audio": "https://example.com/q.wav"}, "audio must be a data URL"),
    ({"message": "Read this", "images": ["https://example.com/r.png"]}, "never fetched"),
    ({"message": "Hi", "modality": "smell"}, "modality"),
])
def test_bad_requests_get_a_400_and_store_nothing(server: RunningServer, bot: Assistant,
                                                  body: dict, message: str) -> None:  # type: ignore[type-arg]
    res = _post(server, **body)
    assert res.status_code in (400, 422) and message in res.text
    assert bot.parts.sessions.list(bot.settings.user) == []
