"""Image parts in chat completions reach the model as OCR evidence, cited in the trace."""

from __future__ import annotations

import httpx
import openai
import pytest

from dialoop.assistant import Assistant
from dialoop.serve.server import RunningServer
from tests.media.conftest import data_url, rendered
from tests.media.test_images import RECEIPT, _blank

pytestmark = pytest.mark.slow


def _ask(client: openai.OpenAI, text: str, url: str):  # type: ignore[no-untyped-def]
    return client.chat.completions.with_raw_response.create(model="default", messages=[
        {"role": "user", "content": [{"type": "text", "text": text},
                                     {"type": "image_url", "image_url": {"url": url}}]}])


def _trace(server: RunningServer, raw) -> dict:  # type: ignore[no-untyped-def]
    turn = httpx.get(f"{server.url}/api/turns/{raw.headers['X-Dialoop-Turn-Id']}").json()
    return turn["trace"]


def test_the_text_in_an_image_is_evidence_for_the_answer(
        client: openai.OpenAI, server: RunningServer, bot: Assistant) -> None:
    raw = _ask(client, "What is the total on this receipt?", data_url(rendered(RECEIPT)))
    assert raw.parse().choices[0].message.content == \
        "You said: What is the total on this receipt? [image 1]"
    evidence = _trace(server, raw)["context"]["evidence"]
    [image] = [e for e in evidence if e["kind"] == "image"]
    assert image["source"] == "image:1" and "TOTAL 6.25" in image["text"]
    # the prompt's evidence block (numbered for citing) is what the trace's context lists;
    # the message itself marks where the image was
    assert bot.engine.asked[-1][0].endswith("[image 1]")
    assert bot.manager.evidence == []  # given to that turn alone: no provider keeps it


def test_an_image_without_text_is_evidence_that_it_cannot_be_read(
        client: openai.OpenAI, server: RunningServer) -> None:
    raw = _ask(client, "What does this say?", data_url(_blank()))
    evidence = _trace(server, raw)["context"]["evidence"]
    assert any("contains no readable text" in e["text"] for e in evidence)


@pytest.mark.parametrize(("url", "message"), [
    ("https://example.com/receipt.png", "never fetched from the internet"),
    ("/etc/hostname", "does not read local image files"),
    ("data:image/png;base64,AAAA", "Cannot read this image"),
])
def test_images_it_will_not_read_get_a_400(client: openai.OpenAI, url: str, message: str) -> None:
    with pytest.raises(openai.BadRequestError, match=message):
        _ask(client, "Read this", url)
