"""Text generation behind one small protocol.

An engine knows how to turn chat messages into a prompt (the model's own chat
template), count tokens, and stream an answer. It knows nothing about sessions,
users or storage: those live in the layers above. It only keeps apart what callers say
must be kept apart: cached prompt state is reused within one ``cache_scope`` (the
assistant's scope is the user), never across scopes.

Implementations: :mod:`~dialoop.engine.llamacpp` (default, GGUF in process),
:mod:`~dialoop.engine.torch` (transformers; the training-side twin) and
:mod:`~dialoop.engine.remote` (any OpenAI-compatible server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict, runtime_checkable

from dialoop.engine.params import GenerationParams

if TYPE_CHECKING:
    from dialoop.config import Settings

__all__ = [
    "Chunk",
    "Engine",
    "FinishReason",
    "GenerationParams",
    "Message",
    "TokenLogprob",
    "Usage",
    "open_engine",
]

FinishReason = Literal["stop", "length", "cancelled"]


class Message(TypedDict):
    """One chat message, as in the OpenAI API and HF chat templates."""

    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Usage:
    """What one generation cost."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens whose KV state was reused, not re-evaluated
    seconds: float  # wall time of the whole call
    first_token_seconds: float | None  # time to first token; None if nothing was generated


@dataclass(frozen=True)
class TokenLogprob:
    """One answer token with its natural-log probability, as the model saw it.

    The distribution is the model's at that step after ``logit_bias`` and the penalties,
    before any grammar mask. ``bytes`` are the token's UTF-8 bytes (a token may hold part
    of a character, whose ``token`` text then shows U+FFFD). ``top`` holds the most likely
    tokens at that step, best first, each as (text, logprob, bytes).
    """

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[tuple[str, float, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of streamed answer. The last chunk carries finish_reason and usage.

    With ``GenerationParams.logprobs`` set, ``logprobs`` holds the tokens whose text this
    chunk shows (text held back for a possible stop string comes with a later chunk);
    over the whole stream each answer token appears once, in order; end-of-text and
    stop-string tokens do not.
    """

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] = ()


@runtime_checkable
class Engine(Protocol):
    """What every engine offers. Calls on one engine are serialized by the engine."""

    kind: str  # "llamacpp" | "torch" | "remote"
    name: str  # the model's display name
    context_window: int  # tokens the prompt plus the answer may use

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for ``messages``, ending with the assistant's turn opener.

        A control token spelled in a message's content is escaped (see
        :mod:`~dialoop.engine.control_tokens`): only the template's own markers are tokens.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as this model's tokenizer counts them (special tokens parsed)."""
        ...

    def escape(self, text: str) -> str:
        """``text`` as :meth:`render` puts a message's content into the prompt (control-token
        spellings defused); escaping escaped text changes nothing. Counting what a message
        will cost means counting this."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        adapter: str | None = None,
        cache_scope: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """Generate an answer to ``messages``, streamed; ``adapter`` names a loaded LoRA.

        ``cache_scope`` partitions the prefix (KV) cache: the prompt reuses the cached state
        of earlier prompts of the same scope only, so that how much was reused
        (``Usage.cached_tokens``, and the time to the first token) tells nothing about the
        prompts of other scopes. The assistant passes the user; None is one scope shared by
        every caller that passes none (evaluation, training, replay).

        ``stop``, set from any thread, stops this generation alone, as soon as the engine can
        (llama.cpp: even mid-way through evaluating the prompt, which for a long prompt takes
        minutes); it then ends with finish_reason "cancelled".

        Closing the iterator early stops generation. The last chunk has finish_reason.
        """
        ...

    def cancel(self) -> None:
        """Stop the generation in progress (if any) at the next token; thread-safe."""
        ...

    def load_adapter(self, name: str, path: Path) -> None:
        """Make a LoRA adapter available under ``name`` (replacing one of that name)."""
        ...

    def unload_adapter(self, name: str) -> None:
        """Forget a loaded adapter; requests naming it fail afterwards."""
        ...

    def close(self) -> None:
        """Free the model and everything it holds."""
        ...


def open_engine(settings: Settings, *, model: str | None = None,
                batch_slots: int = 0) -> Engine:
    """Build the engine the settings ask for (``model`` overrides ``settings.model``);
    ``batch_slots`` > 0: a llama.cpp engine decoding that many answers at once
    (:mod:`dialoop.engine.batched`, the server's ``batch_slots``).

    Imports are deferred so that the default path never pays for importing torch.
    """
    spec = model or settings.model
    if settings.engine == "remote":
        from dialoop.engine.remote import RemoteEngine

        assert settings.remote_url is not None  # Settings validates this
        return RemoteEngine(
            settings.remote_url,
            api_key=settings.remote_api_key,
            model=settings.remote_model,
            context_window=settings.context_window,
        )
    from dialoop.engine.models import resolve_model

    source = resolve_model(spec, home=settings.home)
    if settings.engine == "torch":
        from dialoop.engine.torch import TorchEngine

        return TorchEngine(
            source, cache_dir=settings.home / "cache" / "models", threads=settings.threads
        )
    from dialoop.engine.formats import served_file
    from dialoop.engine.llamacpp import LlamaCppEngine

    # The weight format picked for this host (or the one asked for); never measured here.
    served = served_file(source.require_gguf(), settings.home, settings.weight_format,
                         batched=bool(batch_slots))
    if batch_slots:
        from dialoop.engine.batched import BatchedEngine

        return BatchedEngine(served.path, slots=batch_slots, name=source.name,
                             context_window=settings.context_window,
                             threads=settings.threads or served.threads)
    return LlamaCppEngine(
        served.path,
        name=source.name,
        context_window=settings.context_window,
        threads=settings.threads or served.threads,
        prefix_cache_bytes=settings.prefix_cache_mb * 2**20,
        n_batch=served.n_batch,
        n_ubatch=served.n_ubatch,
    )
