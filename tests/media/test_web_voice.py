"""The web page's Speak button in a real browser (Debian's Chromium, headless, with a fake
microphone that says a question espeak-ng made): the recording goes to POST /api/chat as
audio, so the turn keeps its audio record. The model is the scripted one (tests/fakes.py):
what it says does not matter here."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dialoop.assistant import Assistant
from dialoop.serve.server import RunningServer
from tests.integration.test_web import ARGS, CHROMIUM
from tests.integration.test_web import pytestmark as browser_marks
from tests.media.conftest import spoken, words

pytestmark = browser_marks

QUESTION = "What time do you open on Saturday?"


@pytest.fixture(scope="module")
def voice_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    wav = tmp_path_factory.mktemp("voice") / "question.wav"
    wav.write_bytes(spoken(QUESTION))
    fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=[*ARGS, *fake])
        yield chromium
        chromium.close()


def test_speak_sends_the_recording_as_a_spoken_turn(  # type: ignore[no-untyped-def]
        voice_browser, server: RunningServer, bot: Assistant) -> None:
    context = voice_browser.new_context(permissions=["microphone"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.click("#mic")
    page.wait_for_selector("#mic[aria-pressed=true]")
    page.wait_for_timeout(3500)  # the question takes about two seconds to say
    with page.expect_response("**/api/chat", timeout=120_000) as answered:
        page.click("#mic")
    assert answered.value.status == 200
    assert answered.value.request.post_data_json["audio"].startswith("data:audio/")
    page.wait_for_selector(".msg.assistant:last-child .actions", timeout=60_000)
    said = page.inner_text(".msg.user")
    assert {"open", "saturday"} <= words(said), said  # the transcript is the message shown
    reply = answered.value.json()
    assert said == reply["user_text"]
    turn = httpx.get(f"{server.url}/api/turns/{reply['user_turn_id']}").json()
    assert turn["content"] == said and turn["trace"]["audio"]["language"] == "en"
    # a spoken message is answered in speech: the answer's player is there, with its WAV
    assert page.get_attribute(".msg.assistant:last-child audio", "src").startswith(
        "data:audio/wav;base64,")
    assert page.inner_text(".msg.assistant:last-child .text").startswith("You said: ")
    context.close()
    assert not errors
