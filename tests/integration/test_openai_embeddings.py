"""POST /v1/embeddings, driven by the official openai client against a real server."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openapi_spec_validator import validate

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.embeddings import MAX_INPUTS
from dialoop.serve.server import RunningServer, background_server
from tests.integration.openai_clients import MODEL, official

pytestmark = pytest.mark.slow

CAT = "The cat sits on the mat."
KITTEN = "A kitten is resting on a rug."
TAXES = "Quarterly tax returns are due at the end of April."


@pytest.fixture
def server(assistant: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(assistant)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return official(server.url)


def _matrix(response: CreateEmbeddingResponse) -> np.ndarray:
    return np.array([d.embedding for d in response.data], dtype=np.float32)  # (N, dim)


def test_a_paraphrase_ranks_above_an_unrelated_sentence(
    client: openai.OpenAI, assistant: Assistant
) -> None:
    response = client.embeddings.create(model=MODEL, input=[CAT, KITTEN, TAXES])
    embedder = assistant.parts.learning.memory.embedder
    assert response.model == embedder.name
    assert [d.index for d in response.data] == [0, 1, 2]
    vectors = _matrix(response)
    assert vectors.shape == (3, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cat, kitten, taxes = vectors
    assert cat @ kitten > cat @ taxes + 0.2
    # The vectors are the embedder's, in the order of the inputs.
    np.testing.assert_allclose(vectors, embedder.embed([CAT, KITTEN, TAXES]), atol=1e-5)


def test_float_and_base64_give_the_same_vectors(
    client: openai.OpenAI, server: RunningServer
) -> None:
    # Each request embeds anew, and float32 sums may round differently from one run of the
    # model to the next (memory alignment): equal to float32 precision, not bit for bit.
    as_floats = _matrix(client.embeddings.create(model=MODEL, input=[CAT, TAXES],
                                                 encoding_format="float"))
    by_default = client.embeddings.create(model=MODEL, input=[CAT, TAXES])  # base64, decoded
    np.testing.assert_allclose(_matrix(by_default), as_floats, atol=1e-6)
    raw = httpx.post(f"{server.url}/v1/embeddings", timeout=60, json={
        "model": MODEL, "input": CAT, "encoding_format": "base64"}).json()
    encoded = raw["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")  # as OpenAI's docs say
    np.testing.assert_allclose(decoded, as_floats[0], atol=1e-6)


def test_usage_counts_the_embedders_tokens(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model=MODEL, input="Hello world")
    assert one.usage.prompt_tokens == one.usage.total_tokens == 4  # [CLS] hello world [SEP]
    two = client.embeddings.create(model="all-MiniLM-L6-v2", input=["Hello world", CAT])
    assert two.usage.prompt_tokens == 4 + 9  # the cat sits on the mat . + 2
    assert two.usage.total_tokens == two.usage.prompt_tokens


def test_many_inputs_come_back_in_order(client: openai.OpenAI, assistant: Assistant) -> None:
    texts = [f"Sentence number {i} is about {topic}." for i, topic in
             enumerate(["cats", "taxes", "rivers", "music", "bread"] * 20)]  # 100
    response = client.embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in response.data] == list(range(100))
    expected = assistant.parts.learning.memory.embedder.embed(texts)
    np.testing.assert_allclose(_matrix(response), expected, atol=1e-5)


def test_concurrent_requests_each_get_their_own_vectors(
    client: openai.OpenAI, assistant: Assistant
) -> None:
    texts = [CAT, KITTEN, TAXES, "Rivers flow to the sea.", "Bread rises in the oven."]
    got: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        got[i] = _matrix(client.embeddings.create(model=MODEL, input=[texts[i]] * 3))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = assistant.parts.learning.memory.embedder.embed(texts)
    for i, vectors in got.items():
        np.testing.assert_allclose(vectors, np.repeat(expected[i:i + 1], 3, axis=0), atol=1e-5)
    assert len(got) == len(texts)


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({"input": ""}, openai.BadRequestError, "input 0 is empty"),
    ({"input": [CAT, ""]}, openai.BadRequestError, "input 1 is empty"),
    ({"input": []}, openai.BadRequestError, "at least one text"),
    ({"input": ["x"] * (MAX_INPUTS + 1)}, openai.BadRequestError, "at most 2,048"),
    ({"input": [[9906, 1917]]}, openai.BadRequestError, "dialoop takes text"),
    ({"input": [9906, 1917]}, openai.BadRequestError, "dialoop takes text"),
    ({"input": "word " * 300}, openai.BadRequestError, "reads at most 256"),
    ({"model": "text-embedding-3-small"}, openai.NotFoundError, "not served here"),
    ({"dimensions": 128}, openai.BadRequestError, "384 dimensions"),
    ({"encoding_format": "int8"}, openai.BadRequestError, "encoding_format"),
    ({"user": "no spaces allowed"}, openai.BadRequestError, "Invalid user name"),
])
def test_bad_requests_get_openai_errors(
    client: openai.OpenAI, kwargs: dict, error: type, says: str
) -> None:
    with pytest.raises(error) as caught:
        client.embeddings.create(**{"model": MODEL, "input": CAT, **kwargs})
    body = caught.value.body
    assert says in body["message"]
    assert set(body) == {"message", "type", "param", "code"}


def test_too_much_text_is_413(server: RunningServer, assistant: Assistant) -> None:
    limit = assistant.parts.settings.serve_max_chars
    texts = ["x" * 1000] * (limit // 1000 + 1)
    response = httpx.post(f"{server.url}/v1/embeddings", timeout=60,
                          json={"model": MODEL, "input": texts})
    assert response.status_code == 413
    assert "serve_max_chars" in response.json()["error"]["message"]


def test_response_parses_as_openais_types(server: RunningServer) -> None:
    for encoding in ("float", "base64"):
        raw = httpx.post(f"{server.url}/v1/embeddings", timeout=60, json={
            "model": MODEL, "input": [CAT, KITTEN], "encoding_format": encoding}).json()
        if encoding == "base64":  # OpenAI's type has the floats: its client decodes first
            for item in raw["data"]:
                item["embedding"] = np.frombuffer(base64.b64decode(item["embedding"]),
                                                  dtype="<f4").tolist()
        parsed = CreateEmbeddingResponse.model_validate(raw)  # raises on a missing field
        assert parsed.object == "list" and [d.object for d in parsed.data] == ["embedding"] * 2
        assert parsed.model_dump(mode="json", exclude_unset=True) == raw  # nothing extra


def test_openapi_describes_embeddings(server: RunningServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    validate(schema)
    post = schema["paths"]["/v1/embeddings"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/EmbeddingRequest")
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/EmbeddingList")
    assert post["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse")
    request = schema["components"]["schemas"]["EmbeddingRequest"]
    assert set(request["required"]) == {"model", "input"}
    assert set(request["properties"]) == {"model", "input", "encoding_format", "dimensions",
                                          "user"}
    # The documented response has every field OpenAI's own type requires.
    required = {name for name, field in CreateEmbeddingResponse.model_fields.items()
                if field.is_required()}
    assert required <= set(schema["components"]["schemas"]["EmbeddingList"]["properties"])
