"""The OpenAI-compatible API, driven by the official openai client against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server

pytestmark = pytest.mark.slow

MODEL = "default"


@pytest.fixture
def server(assistant: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(assistant)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-in-local-mode",
                         max_retries=0, timeout=120)


def _stored_turn(assistant: Assistant, session_id: str, turn_id: int):  # type: ignore[no-untyped-def]
    session = assistant.parts.sessions.get(session_id, "local")
    return next(t for t in assistant.parts.sessions.turns(session) if t.id == turn_id)


def test_answer_names_its_stored_turn(client: openai.OpenAI, assistant: Assistant) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of Japan?"}])
    completion = raw.parse()
    answer = completion.choices[0].message.content
    assert answer
    assert completion.choices[0].finish_reason == "stop"
    info = completion.dialoop  # type: ignore[attr-defined]
    assert raw.headers["X-Dialoop-Turn-Id"] == str(info["turn_id"])
    assert raw.headers["X-Dialoop-Session-Id"] == info["session_id"]
    turn = _stored_turn(assistant, info["session_id"], info["turn_id"])
    assert (turn.role, turn.content) == ("assistant", answer)
    assert completion.usage.completion_tokens == turn.completion_tokens
    assert [m.id for m in client.models.list()] == [assistant.engine.name]


def test_streaming_with_usage(client: openai.OpenAI, assistant: Assistant) -> None:
    stream = client.chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What is the capital of Japan?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3  # streamed piece by piece, not in one block
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    info = finish[0].dialoop  # type: ignore[attr-defined]
    turn = _stored_turn(assistant, info["session_id"], info["turn_id"])
    assert turn.content == text
    assert usage_chunk.usage.completion_tokens == turn.completion_tokens


def test_session_continues_by_header(client: openai.OpenAI, assistant: Assistant) -> None:
    header = {"X-Dialoop-Session": "trip"}
    first = client.chat.completions.create(
        model=MODEL, extra_headers=header, max_tokens=20,
        messages=[{"role": "user", "content": "My name is Ann and I am going to Kyoto."}])
    second = client.chat.completions.create(
        model=MODEL, metadata={"session": "trip"}, max_tokens=10,
        messages=[{"role": "user", "content": "What is my name?"}])
    assert first.dialoop["session_id"] == second.dialoop["session_id"]  # type: ignore[attr-defined]
    turns = assistant.parts.sessions.turns(assistant.parts.sessions.get("trip", "local"))
    assert [t.role for t in turns] == ["user", "assistant"] * 2
    assert turns[2].content == "What is my name?"
    # The second answer was made with the first exchange in its prompt.
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens


def test_stateless_history_seeds_a_new_session(
    client: openai.OpenAI, assistant: Assistant
) -> None:
    messages = [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Nice to meet you, Ann!"},
        {"role": "user", "content": "What is my name?"},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10)
    session = assistant.parts.sessions.get(completion.dialoop["session_id"], "local")  # type: ignore[attr-defined]
    assert session.system_prompt == "You are a travel agent."
    turns = assistant.parts.sessions.turns(session)
    assert [t.content for t in turns[:3]] == [m["content"] for m in messages[1:]]
    assert turns[3].content == completion.choices[0].message.content


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({"model": "gpt-4o"}, openai.NotFoundError, "not served here"),
    ({"temperature": 5}, openai.BadRequestError, "temperature"),
    ({"n": 2, "stream": True}, openai.BadRequestError, "without streaming"),
    ({"functions": [{"name": "f"}]}, openai.BadRequestError, "use tools"),
    ({"messages": [{"role": "assistant", "content": "Hi"}]}, openai.BadRequestError,
     "last message must be a non-empty user message"),
    ({"messages": []}, openai.BadRequestError, "messages"),
])
def test_bad_requests_get_openai_errors(
    client: openai.OpenAI, assistant: Assistant, kwargs: dict, error: type, says: str
) -> None:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **kwargs}
    with pytest.raises(error) as caught:
        client.chat.completions.create(**request)
    body = caught.value.body
    assert says in body["message"]
    assert set(body) == {"message", "type", "param", "code"}
    assert assistant.parts.sessions.list("local") == []  # nothing was stored


def test_body_size_limit(server: RunningServer) -> None:
    huge = "x" * (5 * 2**20)
    response = httpx.post(f"{server.url}/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": huge}]})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_queue_full_is_503(assistant: Assistant) -> None:
    app = create_app(assistant, max_waiting=0)
    with background_server(app) as running:
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="x", max_retries=0)
        long = client.chat.completions.create(
            model=MODEL, stream=True, max_tokens=300, temperature=0.8, seed=1,
            messages=[{"role": "user", "content": "Write a long story about a dragon."}])
        next(iter(long))  # the one engine is now busy
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}])
        assert caught.value.status_code == 503
        assert caught.value.response.headers["Retry-After"]
        assert "busy" in caught.value.body["message"]
        long.close()


def test_disconnect_stops_generation(server: RunningServer, assistant: Assistant) -> None:
    body = {"model": MODEL, "stream": True, "max_tokens": 400, "temperature": 0.8, "seed": 3,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
            "metadata": {"session": "dragon"}}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                      timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
    # The answer stops within a moment and is kept, marked cancelled.
    deadline = time.monotonic() + 20
    turns: list = []
    while time.monotonic() < deadline:
        turns = assistant.parts.sessions.turns(assistant.parts.sessions.get("dragon", "local"))
        if len(turns) == 2:
            break
        time.sleep(0.1)
    answer = turns[1]
    assert answer.status == "cancelled"
    assert answer.content and assistant.engine.count_tokens(answer.content) < 300
    # and the engine is free again at once
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200
    assert time.monotonic() - started < 15
