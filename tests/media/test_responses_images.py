"""input_image parts in /v1/responses reach the turn as OCR evidence, cited in its trace,
through the official openai client against a real server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from dialoop.assistant import Assistant
from dialoop.serve.server import RunningServer
from tests.media.conftest import data_url, rendered
from tests.media.test_images import RECEIPT

pytestmark = pytest.mark.slow  # Tesseract reads the image


def _ask(client: openai.OpenAI, text: str, url: str, **extra):  # type: ignore[no-untyped-def]
    return client.responses.with_raw_response.create(model="default", input=[
        {"role": "user", "content": [{"type": "input_text", "text": text},
                                     {"type": "input_image", "image_url": url,
                                      "detail": "auto"}]}], **extra)


def _evidence(server: RunningServer, turn_id: int | str) -> list[dict]:
    turn = httpx.get(f"{server.url}/api/turns/{turn_id}").json()
    return turn["trace"]["context"]["evidence"]


def test_an_input_image_is_evidence_cited_in_the_trace(
        client: openai.OpenAI, server: RunningServer, bot: Assistant) -> None:
    raw = _ask(client, "What is the total on this receipt?", data_url(rendered(RECEIPT)))
    assert raw.parse().output_text == "You said: What is the total on this receipt? [image 1]"
    evidence = _evidence(server, raw.headers["X-Dialoop-Turn-Id"])
    [image] = [e for e in evidence if e["kind"] == "image"]
    assert image["source"] == "image:1" and "TOTAL 6.25" in image["text"]
    assert bot.manager.evidence == []  # given to that turn alone


def test_a_streamed_response_reads_its_image_too(
        client: openai.OpenAI, server: RunningServer) -> None:
    with client.responses.with_streaming_response.create(model="default", stream=True, input=[
            {"role": "user", "content": [
                {"type": "input_text", "text": "Total?"},
                {"type": "input_image", "image_url": data_url(rendered(RECEIPT))}]}]) as raw:
        events = [json.loads(line.removeprefix("data: ")) for line in raw.iter_lines()
                  if line.startswith("data: ")]
    [done] = [e for e in events if e["type"] == "response.completed"]
    assert done["response"]["output"][0]["content"][0]["text"].endswith("[image 1]")
    evidence = _evidence(server, done["response"]["dialoop"]["turn_id"])
    [image] = [e for e in evidence if e["kind"] == "image"]
    assert "TOTAL 6.25" in image["text"]


@pytest.mark.parametrize(("part", "message"), [
    ({"type": "input_image", "image_url": "https://example.com/r.png"},
     "never fetched from the internet"),
    ({"type": "input_image", "image_url": "/etc/hostname"}, "does not read local image files"),
    ({"type": "input_image", "file_id": "file-123"}, "file_id is not supported"),
    ({"type": "input_file", "file_data": "data:application/pdf;base64,AAAA"},
     "not supported here"),
])
def test_images_it_will_not_read_get_a_400(client: openai.OpenAI, part: dict,
                                           message: str) -> None:
    with pytest.raises(openai.BadRequestError, match=message):
        client.responses.create(model="default", input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Read it"}, part]}])
