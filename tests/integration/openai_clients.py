"""OpenAI clients pointed at a running dialoop server: the official one and two from PyPI.

    with background_server(create_app(assistant)) as server:
        chat = langchain_chat(server.url)            # langchain-openai's ChatOpenAI
        agent = Agent(name="a", model=agents_model(server.url))   # the OpenAI Agents SDK

Each is built as its users build it for a self-hosted endpoint, with what keeps it off
the internet (tests reach only loopback):

- **langchain-openai**: ``OpenAIEmbeddings`` splits texts with tiktoken, whose encodings
  are downloaded, unless ``check_embedding_ctx_length=False`` (then it sends the strings).
  LangSmith tracing stays off while ``LANGSMITH_TRACING`` is unset.
- **openai-agents**: traces go to OpenAI's servers unless disabled (done on import here).
  The SDK has no embeddings API; its chat model is the official ``AsyncOpenAI`` client.

``max_retries=0`` everywhere: a refused request fails at once, with the server's error.
"""

from __future__ import annotations

from typing import Any

import openai
from agents import Agent, OpenAIChatCompletionsModel, Runner, RunResult, set_tracing_disabled
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

MODEL = "default"
API_KEY = "unused-in-local-mode"  # every client insists on one; a local server ignores it
TIMEOUT = 120.0

set_tracing_disabled(True)


def official(url: str, **kwargs: Any) -> openai.OpenAI:
    """The official client on ``url`` (a server's root, as ``RunningServer.url``)."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0,
                         timeout=TIMEOUT, **kwargs)


def langchain_chat(url: str, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{url}/v1", api_key=API_KEY, model=MODEL, max_retries=0,
                      timeout=TIMEOUT, **kwargs)


def langchain_embeddings(url: str, **kwargs: Any) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(base_url=f"{url}/v1", api_key=API_KEY, model=MODEL,
                            check_embedding_ctx_length=False, max_retries=0,
                            timeout=TIMEOUT, **kwargs)


def agents_model(url: str) -> OpenAIChatCompletionsModel:
    """An Agents SDK model speaking Chat Completions to the server."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0,
                                timeout=TIMEOUT)
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=client)


def run_agent(agent: Agent[Any], message: str, **kwargs: Any) -> RunResult:
    """Run ``agent`` on ``message`` to its final output (in an event loop of its own)."""
    return Runner.run_sync(agent, message, **kwargs)
