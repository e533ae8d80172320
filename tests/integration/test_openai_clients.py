"""Third-party OpenAI clients from PyPI against a real server: LangChain and the Agents SDK.

What each client parses is checked as well: the raw responses validate as the openai
package's own pydantic types, which these clients are built on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from agents import Agent
from langchain_core.messages import AIMessage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server
from tests.integration.openai_clients import (
    MODEL,
    agents_model,
    langchain_chat,
    langchain_embeddings,
    run_agent,
)

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of Japan?"


@pytest.fixture
def server(assistant: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(assistant)) as running:
        yield running


def _stored_answers(assistant: Assistant) -> list[str]:
    sessions = assistant.parts.sessions
    return [t.content for s in sessions.list("local") for t in sessions.turns(s.session)
            if t.role == "assistant"]


# -- LangChain (langchain-openai) --------------------------------------------------------

def test_langchain_embeddings_rank_a_paraphrase_first(
    server: RunningServer, assistant: Assistant
) -> None:
    embeddings = langchain_embeddings(server.url)
    documents = ["The cat sits on the mat.", "Quarterly tax returns are due in April.",
                 "Rivers flow down to the sea."]
    vectors = np.array(embeddings.embed_documents(documents))  # (3, dim)
    query = np.array(embeddings.embed_query("A kitten is resting on a rug."))  # (dim,)
    assert vectors.shape == (3, assistant.parts.learning.memory.embedder.dim)
    assert int(np.argmax(vectors @ query)) == 0
    np.testing.assert_allclose(
        vectors, assistant.parts.learning.memory.embedder.embed(documents), atol=1e-5)


def test_langchain_chat_answers_and_the_answer_is_stored(
    server: RunningServer, assistant: Assistant
) -> None:
    message = langchain_chat(server.url, temperature=0, max_tokens=40).invoke(QUESTION)
    assert isinstance(message, AIMessage)
    assert isinstance(message.content, str) and message.content.strip()
    assert message.response_metadata["finish_reason"] in ("stop", "length")
    assert message.usage_metadata and message.usage_metadata["output_tokens"] > 0
    assert _stored_answers(assistant) == [message.content]


def test_langchain_chat_streams(server: RunningServer) -> None:
    pieces = [c.content for c in langchain_chat(server.url, max_tokens=30).stream(QUESTION)]
    assert len([p for p in pieces if p]) > 3 and "".join(pieces).strip()


# -- the OpenAI Agents SDK (openai-agents) ---------------------------------------------------

def test_agents_sdk_runs_an_agent_on_the_server(
    server: RunningServer, assistant: Assistant
) -> None:
    agent = Agent(name="Geographer", instructions="Answer in one short sentence.",
                  model=agents_model(server.url))
    result = run_agent(agent, QUESTION)
    assert isinstance(result.final_output, str) and result.final_output.strip()
    assert _stored_answers(assistant) == [result.final_output]
    usage = result.context_wrapper.usage
    assert usage.requests == 1 and usage.output_tokens > 0


# -- what the clients parse ------------------------------------------------------------------

def test_chat_responses_parse_as_openais_types(server: RunningServer) -> None:
    request = {"model": MODEL, "max_tokens": 20,
               "messages": [{"role": "user", "content": QUESTION}]}
    raw = httpx.post(f"{server.url}/v1/chat/completions", json=request, timeout=120).json()
    completion = ChatCompletion.model_validate(raw)  # raises on a missing required field
    assert completion.choices[0].message.content
    chunks = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=120, json={
            **request, "stream": True, "stream_options": {"include_usage": True}}) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(ChatCompletionChunk.model_validate(json.loads(line[6:])))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


# -- tools and structured output through the third-party clients ----------------------------

def test_langchain_bind_tools_and_structured_output(server: RunningServer) -> None:
    from langchain_core.tools import tool
    from pydantic import BaseModel, Field

    @tool
    def get_weather(city: str) -> str:
        """The weather now in a city."""
        return "sunny"

    chat = langchain_chat(server.url, max_completion_tokens=64)
    message = chat.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What's the weather in Paris?")
    assert isinstance(message, AIMessage) and message.tool_calls
    call = message.tool_calls[0]
    assert call["name"] == "get_weather" and isinstance(call["args"].get("city"), str)

    class Place(BaseModel):
        city: str = Field(description="the city")
        country: str = Field(description="the country it is in")

    place = chat.with_structured_output(Place, method="json_schema", strict=True).invoke(
        "Which city is the capital of Japan?")
    assert isinstance(place, Place)


def test_agents_sdk_runs_a_function_tool_it_chose(server: RunningServer) -> None:
    from agents import ModelSettings, function_tool

    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather now in a city."""
        asked.append(city)
        return f"It is sunny in {city}."

    agent = Agent(name="weather", instructions="Use the tools to answer.",
                  model=agents_model(server.url), tools=[get_weather],
                  model_settings=ModelSettings(tool_choice="required", max_tokens=64),
                  tool_use_behavior="stop_on_first_tool")
    result = run_agent(agent, "What's the weather in Paris?", max_turns=2)
    assert asked and all(isinstance(c, str) and c for c in asked)  # the SDK ran our call
    assert result.final_output == f"It is sunny in {asked[0]}."
