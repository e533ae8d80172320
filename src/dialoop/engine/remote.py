"""Any OpenAI-compatible server: vLLM, the llama.cpp server, Ollama, a hosted API.

The server owns the model, its chat template and its tokenizer, so two things are
approximate here and only used to budget the context window:

- ``render`` produces a ChatML transcript (what most templates look like);
- ``count_tokens`` asks the server's tokenize endpoint when it has one (llama.cpp's
  ``/tokenize``, llama-cpp-python's ``/extras/tokenize``, vLLM's ``/tokenize``) and
  otherwise estimates one token per three bytes, which over-counts English text.

Adapters: the server serves them (vLLM ``--lora-modules NAME=PATH``); a request for
adapter NAME is sent with ``model=NAME``, the vLLM convention. One adapter per request:
a stack of adapters (``a+b``, see :mod:`dialoop.engine.adapters`) is refused.

The server's prefix cache is its own: ``cache_scope`` is not sent, and no cached-token
count is reported. Since the server's vocabulary is unknown here, the control tokens
escaped in messages (see :mod:`dialoop.engine.control_tokens`) are the spellings chat
templates commonly use: ``<|name|>`` (ChatML, Llama 3, Phi), ``<｜name｜>`` (DeepSeek),
``<s>``/``</s>``, ``[INST]``/``[/INST]`` and Gemma's ``<start_of_turn>``/``<end_of_turn>``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from dialoop.engine import Chunk, FinishReason, GenerationParams, Message, TokenLogprob, Usage
from dialoop.engine.adapters import STACK_SEP
from dialoop.engine.control_tokens import ControlTokens
from dialoop.errors import EngineError, InvalidInputError

__all__ = ["RemoteEngine"]

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096

_COMMON_CONTROL_TOKENS = ControlTokens(re.compile(
    r"<\|[^\s|<>]{1,64}\|>|<｜[^｜<>]{1,64}｜>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>"))


class RemoteEngine:
    """Generation on an OpenAI-compatible server."""

    kind = "remote"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        context_window: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        self._client = OpenAI(
            base_url=self.base_url, api_key=api_key or "none", timeout=timeout, max_retries=0
        )
        served = self._models()
        if model is None:
            if not served:
                raise EngineError(f"The server at {self.base_url} lists no models; name one.")
            model = served[0]["id"]
        self.name: str = model
        self._served = {m["id"] for m in served}
        info = next((m for m in served if m["id"] == model), {})
        self.context_window = context_window or int(info.get("max_model_len") or DEFAULT_CONTEXT)
        self._cancel = threading.Event()
        self._tokenize: Any = None  # the tokenize call that works on this server, once known
        self._adapters: set[str] = set()

    # -- text ---------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        escaped = _COMMON_CONTROL_TOKENS.escape_messages(messages)
        body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in escaped)
        return body + "<|im_start|>assistant\n"

    def escape(self, text: str) -> str:
        return _COMMON_CONTROL_TOKENS.escape(text)

    def count_tokens(self, text: str) -> int:
        if self._tokenize is None:
            self._tokenize = self._find_tokenizer()
        return self._tokenize(text)

    def _find_tokenizer(self) -> Any:
        root = self.base_url.removesuffix("/v1")
        candidates = [
            (f"{self.base_url}/extras/tokenize/count", lambda t: {"input": t}, "count"),
            (f"{root}/extras/tokenize/count", lambda t: {"input": t}, "count"),
            (f"{root}/tokenize", lambda t: {"model": self.name, "prompt": t}, "count"),
            (f"{root}/tokenize", lambda t: {"content": t}, "tokens"),
        ]
        for url, body, field in candidates:
            try:
                r = httpx.post(url, json=body("probe"), timeout=5)
                if r.status_code == 200 and field in r.json():
                    log.info("counting tokens with %s", url)
                    return lambda text, url=url, body=body, field=field: _count(
                        httpx.post(url, json=body(text), timeout=30).json()[field]
                    )
            except (httpx.HTTPError, ValueError):
                continue
        log.info("no tokenize endpoint at %s: estimating tokens from bytes", self.base_url)
        return lambda text: len(text.encode("utf-8")) // 3 + 1

    # -- generation ---------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        adapter: str | None = None,
        cache_scope: str | None = None,  # the server's prefix cache is its own
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        if adapter is not None and STACK_SEP in adapter:
            raise InvalidInputError(
                f"The remote engine applies one adapter per request (vLLM's rule), not the stack "
                f"{adapter!r}: serve one adapter merged from its parts, or use the llamacpp or "
                "torch engine."
            )
        if params.grammar is not None:
            raise InvalidInputError(
                "The remote engine cannot enforce a GBNF grammar: grammar/constrained decoding "
                "is only available on the llamacpp engine (a remote server takes "
                "response_format itself: send it there directly)."
            )
        extra: dict[str, Any] = {}
        if params.top_k:
            extra["top_k"] = params.top_k
        if params.repeat_penalty != 1.0:
            extra["repeat_penalty"] = params.repeat_penalty
        request = dict(
            model=adapter or self.name,
            messages=_COMMON_CONTROL_TOKENS.escape_messages(messages),
            stream=True,
            stream_options={"include_usage": True},
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
            extra_body=extra or None,
        )
        # OpenAI's own parameters, sent only when used (servers differ in what they accept);
        # logit_bias token ids are the server's model's ids.
        if params.frequency_penalty:
            request["frequency_penalty"] = params.frequency_penalty
        if params.presence_penalty:
            request["presence_penalty"] = params.presence_penalty
        if params.logit_bias:
            request["logit_bias"] = {str(t): b for t, b in params.logit_bias}
        if params.logprobs is not None:
            request["logprobs"] = True
            request["top_logprobs"] = params.logprobs
        return self._generate(request, stop or threading.Event())

    def _generate(self, request: dict[str, Any], stop: threading.Event) -> Iterator[Chunk]:
        import openai

        self._cancel.clear()
        start = time.perf_counter()
        first: float | None = None
        n = 0
        finish: FinishReason = "stop"
        usage_seen: Any = None
        try:
            response = self._client.chat.completions.create(**request)
            with response:
                for event in response:
                    if event.usage is not None:
                        usage_seen = event.usage
                    for choice in event.choices:
                        text = choice.delta.content or ""
                        logprobs = _logprobs(choice)
                        if text or logprobs:
                            if first is None:
                                first = time.perf_counter() - start
                            n += 1
                            yield Chunk(text, logprobs=logprobs)
                        if choice.finish_reason in ("stop", "length"):
                            finish = choice.finish_reason
                    if self._cancel.is_set() or stop.is_set():
                        finish = "cancelled"
                        break
        except openai.APIConnectionError as exc:
            raise EngineError(
                f"Cannot reach the model server at {self.base_url} ({exc}): is it running?"
            ) from None
        except openai.BadRequestError as exc:
            refused = f"The model server refused the request: {exc.message}"
            raise InvalidInputError(refused) from None
        except openai.APIStatusError as exc:
            raise EngineError(
                f"The model server at {self.base_url} answered {exc.status_code}: {exc.message}"
            ) from None
        prompt = usage_seen.prompt_tokens if usage_seen else 0
        completion = usage_seen.completion_tokens if usage_seen else n
        usage = Usage(prompt, completion, 0, time.perf_counter() - start, first)
        yield Chunk("", finish_reason=finish, usage=usage)

    def cancel(self) -> None:
        self._cancel.set()

    # -- adapters -----------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Adapters live on the server; accept ``name`` only if the server serves it."""
        self._served = {m["id"] for m in self._models()}
        if name not in self._served:
            raise EngineError(
                f"The server at {self.base_url} does not serve an adapter {name!r}. Serve "
                f"{path} there (vLLM: --enable-lora --lora-modules {name}={path})."
            )
        self._adapters.add(name)

    def unload_adapter(self, name: str) -> None:
        self._adapters.discard(name)

    def close(self) -> None:
        self._client.close()

    def _models(self) -> list[dict[str, Any]]:
        import openai

        try:
            return [m.model_dump() for m in self._client.models.list()]
        except openai.APIConnectionError:
            raise EngineError(
                f"Cannot reach the model server at {self.base_url}: is it running, and is "
                "DIALOOP_REMOTE_URL its base URL (usually ending in /v1)?"
            ) from None
        except openai.APIStatusError as exc:
            raise EngineError(
                f"The model server at {self.base_url} answered {exc.status_code}: {exc.message}"
            ) from None


def _logprobs(choice: Any) -> tuple[TokenLogprob, ...]:
    """The logprobs of one streamed choice, as the server reports them (none if it does not)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or ()
    return tuple(
        TokenLogprob(
            item.token, float(item.logprob), tuple(item.bytes or item.token.encode()),
            tuple((alt.token, float(alt.logprob), tuple(alt.bytes or alt.token.encode()))
                  for alt in item.top_logprobs or ()),
        )
        for item in content
    )


def _count(value: int | list[int]) -> int:
    return value if isinstance(value, int) else len(value)
