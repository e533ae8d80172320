"""The default engine: a GGUF model in process through llama-cpp-python.

Three things make it more than a thin wrapper:

- **Prefix (KV) reuse.** Like ``Llama.generate``, generation skips the part of a prompt
  that matches what the KV cache holds, so the next turn of the same conversation only
  evaluates the new tokens. When another conversation comes in, the state of the
  current one would be overwritten; we first park it in a small LRU
  (:class:`_SavedStates`) and bring it back when that conversation continues.
  States are kept per ``cache_scope`` (the user): a prompt never reuses, and so never
  measures, the state of another scope's prompt, however much of it it shares.
- **Hot-swapped LoRA adapters**, applied per request without reloading the model;
  a request may name a stack of loaded adapters applied together
  (``adapter="user:ann@v3+user:ann@v3#style"``, see :mod:`dialoop.engine.adapters`).
  A KV state is only valid for the weights that produced it, so saved states are
  keyed by the whole stack.
- **Text streaming** that never splits a UTF-8 character or shows half a stop string.
- **Our own sampler loop** (:class:`dialoop.engine.sampling.Sampling`: llama.cpp's
  samplers in Llama's order, so seeded answers are unchanged) for what ``Llama.generate``
  lacks: a grammar checked token by token (cheap: see there), ``logit_bias``, OpenAI's
  penalties over the whole answer, and logprobs paired with the token they belong to.
- **Stopping mid-prompt.** ``Llama.eval`` evaluates the whole prompt in one call
  (minutes for a few thousand tokens on a busy machine), and a stop flag checked between
  generated tokens would wait for all of it. While a prompt is evaluated, llama.cpp's
  abort callback watches the generation's ``stop`` flag, and decoding ends within one
  graph node of it being set. The callback is a Python function that llama.cpp calls at
  every node, so it takes the GIL each time: it is installed for the prompt only
  (nodes that take milliseconds each), not while tokens are generated one at a time.

Control tokens spelled in messages are escaped before rendering (see
:mod:`dialoop.engine.control_tokens`), so that the prompt, tokenized with special tokens
parsed, holds only the template's own markers.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dialoop.engine import Chunk, FinishReason, GenerationParams, Message, TokenLogprob, Usage
from dialoop.engine.adapters import STACK_SEP, stack_key, stack_parts
from dialoop.engine.control_tokens import ControlTokens
from dialoop.engine.grammar import check_grammar
from dialoop.engine.models import check_gguf
from dialoop.engine.sampling import Sampling, Step
from dialoop.engine.streaming import TextStream, TokenTrail
from dialoop.errors import ContextOverflowError, InvalidInputError, ModelLoadError, NotFoundError

__all__ = ["LlamaCppEngine", "check_room", "default_threads", "set_adapters"]

log = logging.getLogger(__name__)
_native_log = logging.getLogger(__name__ + ".native")

MAX_DEFAULT_CONTEXT = 8192
# Park the current KV state only if switching away would throw this many tokens away;
# the ordinary next turn of the same conversation re-tokenizes a few tokens differently.
_PARK_MIN_TOKENS = 64
_GRAMMAR_CACHE = 16  # parsed grammars kept per engine


def default_threads() -> int:
    """One thread per physical core we may run on: hyper-thread siblings share a core's
    arithmetic units, and llama.cpp's threads wait for each other at every layer, so a
    second thread on the same core slows a token down rather than up."""
    if hasattr(os, "sched_getaffinity"):
        cpus: Iterable[int] = os.sched_getaffinity(0)
    else:
        cpus = range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))  # no topology: count logical CPUs
    return max(1, len(cores))


class LlamaCppEngine:
    """A GGUF model served by llama.cpp in this process."""

    kind = "llamacpp"

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        context_window: int | None = None,
        threads: int | None = None,
        prefix_cache_bytes: int = 256 * 2**20,
        reuse_prefix: bool = True,
        n_batch: int | None = None,
        n_ubatch: int | None = None,
    ) -> None:
        """``reuse_prefix=False`` evaluates every prompt from scratch (for comparison).

        ``n_batch`` (prompt tokens per decode call) and ``n_ubatch`` (per compute graph) set
        how a prompt is evaluated; None keeps llama-cpp-python's 512 each. The values measured
        best on this host are in the weight-format pick (:mod:`dialoop.engine.formats`).
        """
        import llama_cpp

        check_gguf(path)
        _route_native_logs(llama_cpp)
        threads = threads or default_threads()
        try:
            n_ctx = context_window or min(_trained_context(path), MAX_DEFAULT_CONTEXT)
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
                **{k: v for k, v in (("n_batch", n_batch), ("n_ubatch", n_ubatch)) if v},
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"llama.cpp cannot load {path} ({exc}); the file may be truncated or corrupt: "
                "re-download it, or pass another --model."
            ) from None
        self._lib = llama_cpp
        self.name = name or path.stem
        self.path = path
        self.context_window = self._llm.n_ctx()
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelLoadError(
                f"{path} has no chat template in its metadata; dialoop needs a chat model."
            )
        self._bos = self._token_text(self._llm.token_bos())
        self._formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template, eos_token=self._token_text(self._llm.token_eos()), bos_token=self._bos
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._control = ControlTokens.of(self._control_spellings())
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._stop: threading.Event | None = None  # the stop flag of the running generation
        self._abort = llama_cpp.ggml_abort_callback(self._should_abort)  # keep a reference
        self._reuse = reuse_prefix
        self._states = _SavedStates(prefix_cache_bytes if reuse_prefix else 0)
        self._adapters: dict[str, ctypes.c_void_p] = {}  # loaded parts
        self._active_adapter: str | None = None  # the stack key applied now
        self._live_scope: str | None = None  # the cache scope of the tokens in the context
        self._grammars: OrderedDict[str, ctypes.c_void_p] = OrderedDict()  # parsed, LRU
        self._pieces: dict[int, bytes] = {}  # token -> bytes, for logprob alternatives

    # -- text ---------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        return self._formatter(messages=self._control.escape_messages(messages)).prompt

    def escape(self, text: str) -> str:
        return self._control.escape(text)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def _tokenize(self, text: str) -> list[int]:
        # The template may already spell out BOS; only add it when it does not.
        add_bos = not (self._bos and text.startswith(self._bos))
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The tokens generation starts from: the rendered prompt, special tokens parsed."""
        return self._tokenize(self.render(messages))

    def _control_spellings(self) -> list[str]:
        """How the vocabulary's control tokens (turn markers, end of text, …) are spelled."""
        control = self._lib.LLAMA_TOKEN_ATTR_CONTROL
        n = self._lib.llama_vocab_n_tokens(self._vocab)
        return [self._token_text(t) for t in range(n)
                if self._lib.llama_vocab_get_attr(self._vocab, t) & control]

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    # -- generation ---------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        adapter: str | None = None,
        cache_scope: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        self._check_params(params)
        tokens = self._prompt_tokens(messages)
        room = check_room(len(tokens), self.context_window)
        return self._generate(tokens, params, min(params.max_tokens, room), adapter, cache_scope,
                              stop or threading.Event())

    def _generate(
        self, tokens: list[int], params: GenerationParams, max_new: int, adapter: str | None,
        scope: str | None, stop: threading.Event,
    ) -> Iterator[Chunk]:
        with self._lock:
            self._cancel.clear()
            self._stop = stop
            start = time.perf_counter()
            self._use_adapter(adapter)
            cached = min(self._bring_best_prefix(tokens, scope), len(tokens) - 1)
            seed = params.seed if params.seed is not None else random.getrandbits(31)
            sampling = Sampling(self._lib, self._llm, params, max_new, seed,
                                 self._grammar_sampler(params.grammar))
            text = TextStream(params.stop)
            trail: TokenTrail[TokenLogprob] = TokenTrail()
            first: float | None = None
            n = 0
            finish: FinishReason = "length"
            tokens_out = self._decode(tokens, sampling)
            self._watch_prompt(True)
            try:
                for token in self._abortable(tokens_out):
                    if first is None:
                        first = time.perf_counter() - start
                        self._watch_prompt(False)  # from here on, checked between tokens
                    if self._lib.llama_vocab_is_eog(self._vocab, token):
                        finish = "stop"
                        break
                    n += 1
                    data = self._llm.detokenize([token])
                    before = text.decoded
                    piece = text.feed(data)
                    if sampling.step is not None:
                        trail.add(self._token_logprob(data, sampling.step), before, text.decoded)
                    if piece:
                        yield Chunk(piece, logprobs=trail.take(text.shown))
                    if text.stopped:
                        finish = "stop"
                        break
                    if self._stopping():
                        finish = "cancelled"
                        break
                    if n >= max_new:
                        break
                else:
                    if self._stopping():  # aborted while evaluating the prompt
                        finish = "cancelled"
            finally:
                self._watch_prompt(False)
                self._stop = None
                tokens_out.close()
                sampling.close()
            usage = Usage(len(tokens), n, max(cached, 0), time.perf_counter() - start, first)
            tail = text.flush()
            yield Chunk(tail, finish_reason=finish, usage=usage,
                        logprobs=trail.rest(text.shown, stopped=text.stopped))

    def _decode(self, tokens: list[int], sampling: Sampling) -> Iterator[int]:
        """Evaluate the prompt (past the prefix the KV cache holds), then sample token by token.

        What ``Llama.generate`` does, with our own sampler: the KV cache keeps the longest
        common prefix, and at least the last prompt token is evaluated again, because its
        logits are the ones the first answer token is sampled from.
        """
        llm = self._llm
        keep = _common_prefix(llm.input_ids[: llm.n_tokens], tokens) if llm.n_tokens else 0
        keep = min(keep, len(tokens) - 1)
        mem = self._lib.llama_get_memory(llm.ctx)
        if keep > 0 and self._lib.llama_memory_seq_rm(mem, -1, keep, -1):
            llm.n_tokens = keep
        else:
            llm.reset()
            keep = 0
        llm.eval(tokens[keep:])
        while True:
            token = sampling.sample()
            yield token
            llm.eval([token])

    def _grammar_sampler(self, gbnf: str | None) -> ctypes.c_void_p | None:
        """A fresh llama.cpp grammar sampler for ``gbnf`` (None: no grammar).

        Parsed grammars are kept (a few) and cloned, so a grammar used again, such as a
        tool's, is not parsed again.
        """
        if gbnf is None:
            return None
        parsed = self._grammars.pop(gbnf, None)
        if parsed is None:
            parsed = self._lib.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
            if not parsed:
                raise InvalidInputError("llama.cpp cannot parse the grammar: check its syntax.")
        self._grammars[gbnf] = parsed
        while len(self._grammars) > _GRAMMAR_CACHE:
            self._lib.llama_sampler_free(self._grammars.popitem(last=False)[1])
        return self._lib.llama_sampler_clone(parsed)

    def _token_logprob(self, data: bytes, step: Step) -> TokenLogprob:
        top = tuple((self._piece(t).decode("utf-8", errors="replace"), lp, tuple(self._piece(t)))
                    for t, lp in step.top)
        return TokenLogprob(data.decode("utf-8", errors="replace"), step.logprob, tuple(data), top)

    def _piece(self, token: int) -> bytes:
        """A token's bytes as shown among alternatives (control tokens spelled out)."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._llm.detokenize([token], special=True)
        return piece

    def _check_params(self, params: GenerationParams) -> None:
        """Refuse, before anything runs, what this model cannot do."""
        if params.grammar is not None:
            check_grammar(params.grammar)
        n_vocab = self._llm.n_vocab()
        for token, _ in params.logit_bias:
            if token >= n_vocab:
                raise InvalidInputError(
                    f"logit_bias names token {token}, but {self.name} has {n_vocab} tokens "
                    f"(ids 0 to {n_vocab - 1})."
                )

    def cancel(self) -> None:
        self._cancel.set()

    # -- stopping mid-prompt ----------------------------------------------------------

    def _stopping(self) -> bool:
        stop = self._stop
        return self._cancel.is_set() or (stop is not None and stop.is_set())

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        """llama.cpp's abort callback: called between graph nodes, on llama.cpp's thread."""
        return self._stopping()

    def _watch_prompt(self, on: bool) -> None:
        """Install (or remove) the abort callback on the context."""
        callback = self._abort if on else self._lib.ggml_abort_callback()  # a NULL pointer
        self._lib.llama_set_abort_callback(self._llm.ctx, callback, None)

    def _abortable(self, tokens_out: Iterator[int]) -> Iterator[int]:
        """``tokens_out``, ending early (and cleanly) if the stop flag aborts a decode.

        An aborted ``llama_decode`` leaves the ubatches it finished in the KV cache, beyond
        the tokens ``Llama`` counts (whole batches, ``n_tokens``): they are removed, so that
        the cache holds exactly the counted prefix, which the next prompt may reuse and
        which is parked like any other state.
        """
        while True:
            try:
                token = next(tokens_out)
            except StopIteration:
                return
            except RuntimeError:
                if not self._stopping():
                    raise
                mem = self._lib.llama_get_memory(self._llm.ctx)
                self._lib.llama_memory_seq_rm(mem, -1, self._llm.n_tokens, -1)
                log.debug("prompt evaluation aborted after %d tokens", self._llm.n_tokens)
                return
            yield token

    # -- prefix states --------------------------------------------------------------

    def _bring_best_prefix(self, tokens: list[int], scope: str | None) -> int:
        """Make the KV cache hold the longest prefix of ``tokens`` known in ``scope``.

        Returns its length. Only states made in ``scope`` count: the live context of
        another scope is parked (if worth it) and cleared, whatever it shares with
        ``tokens``, so that neither the reported count nor the work done depends on it.
        """
        if not self._reuse:
            self._llm.reset()
            return 0
        here = 0
        if scope == self._live_scope:
            here = _common_prefix(self._llm.input_ids[: self._llm.n_tokens], tokens)
        saved = self._states.take_best(self._active_adapter, scope, tokens, longer_than=here)
        self._park_current(here)
        if saved is not None:
            here = saved.common if self._restore(saved.tokens, saved.data) else 0
        elif here == 0:
            self._llm.reset()  # _decode must not find a prefix of its own in there
        self._live_scope = scope
        return here

    def _park_current(self, keep: int) -> None:
        """Save the current KV state if continuing would discard much of it."""
        n = self._llm.n_tokens
        if n - keep < _PARK_MIN_TOKENS or not self._states.enabled:
            return
        size = self._lib.llama_state_seq_get_size(self._llm.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self._llm.ctx, buf, size, 0)
        self._states.put(self._active_adapter, self._live_scope, self._llm.input_ids[:n].copy(),
                         bytes(buf[:written]))

    def _restore(self, tokens: np.ndarray, data: bytes) -> bool:
        """Load a parked state into the context; False (context reset) if llama.cpp refuses."""
        mem = self._lib.llama_get_memory(self._llm.ctx)
        self._lib.llama_memory_clear(mem, True)
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if self._lib.llama_state_seq_set_data(self._llm.ctx, buf, len(data), 0) != len(data):
            log.warning("could not restore a saved KV state; evaluating the prompt in full")
            self._llm.reset()
            return False
        n = len(tokens)
        self._llm.input_ids[:n] = tokens
        self._llm.n_tokens = n
        # The logits in memory belong to another sequence: at least one token must be
        # evaluated before sampling (_decode always does; the private flag tells Llama).
        self._llm._requires_eval = True
        return True

    # -- adapters ---------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Load one LoRA part under ``name`` (a request then names it, alone or stacked)."""
        if STACK_SEP in name:
            raise InvalidInputError(f"Load the parts of {name!r} one by one, not as a stack.")
        with self._lock:
            check_gguf(path)
            adapter = self._lib.llama_adapter_lora_init(self._llm.model, str(path).encode())
            if not adapter:
                raise ModelLoadError(
                    f"llama.cpp cannot load the LoRA adapter {path}: is it a GGUF LoRA made "
                    f"for {self.name}?"
                )
            old = self._adapters.pop(name, None)
            self._states.drop_adapter(name)
            if self._active_uses(name):
                self._activate(None)
            if old:
                self._lib.llama_adapter_lora_free(old)
            self._adapters[name] = adapter

    def unload_adapter(self, name: str) -> None:
        with self._lock:
            adapter = self._adapters.pop(name, None)
            if adapter is None:
                return
            if self._active_uses(name):
                self._activate(None)
            self._states.drop_adapter(name)
            self._lib.llama_adapter_lora_free(adapter)

    @property
    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def _use_adapter(self, ref: str | None) -> None:
        """Apply the stack ``ref`` names (None: no adapter), if it is not applied already."""
        key = stack_key(stack_parts(ref)) if ref is not None else None
        if key == self._active_adapter:
            return
        for part in stack_parts(key) if key is not None else ():
            if part not in self._adapters:
                raise NotFoundError(f"No adapter named {part!r} is loaded in this engine.")
        self._park_current(0)  # the KV state is only valid for the weights that made it
        self._activate(key)

    def _activate(self, key: str | None) -> None:
        """Set the context's adapters to the stack ``key`` (each part at scale 1)."""
        parts = stack_parts(key) if key is not None else ()
        set_adapters(self._lib, self._llm.ctx, [self._adapters[p] for p in parts], key)
        self._llm.reset()
        self._active_adapter = key

    def lora_handles(self, key: str | None) -> list[ctypes.c_void_p]:
        """The loaded parts of the stack ``key`` (None: none), for another context on this
        model (:mod:`dialoop.engine.batched`); NotFoundError if a part is not loaded."""
        parts = stack_parts(key) if key is not None else ()
        for part in parts:
            if part not in self._adapters:
                raise NotFoundError(f"No adapter named {part!r} is loaded in this engine.")
        return [self._adapters[p] for p in parts]

    def _active_uses(self, part: str) -> bool:
        return self._active_adapter is not None and part in stack_parts(self._active_adapter)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            for adapter in self._adapters.values():
                self._lib.llama_adapter_lora_free(adapter)
            self._adapters.clear()
            self._states.clear()
            for parsed in self._grammars.values():
                self._lib.llama_sampler_free(parsed)
            self._grammars.clear()
            self._llm.close()


@dataclass(frozen=True)
class _Saved:
    tokens: np.ndarray
    data: bytes
    common: int = 0


class _SavedStates:
    """An LRU of parked KV states, bounded in bytes, keyed by (adapter stack, scope, tokens).

    A state is found only by a prompt of the same cache scope (and adapter stack).

    Written here rather than with ``llama_cpp.LlamaRAMCache`` because that cache
    stores full ``Llama.save_state()`` snapshots, which copy the n_batch × vocab
    logits array (~100 MB for a 49k vocabulary) each time, and cannot tell
    adapters apart.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._items: OrderedDict[tuple[str | None, str | None, bytes], _Saved] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def put(self, adapter: str | None, scope: str | None, tokens: np.ndarray, data: bytes) -> None:
        if len(data) > self.capacity:
            return
        key = (adapter, scope, tokens.tobytes())
        self._items[key] = _Saved(tokens, data)
        self._items.move_to_end(key)
        while sum(len(s.data) for s in self._items.values()) > self.capacity:
            self._items.popitem(last=False)

    def take_best(
        self, adapter: str | None, scope: str | None, tokens: list[int], *, longer_than: int = 0
    ) -> _Saved | None:
        """The state of ``scope`` sharing the longest prefix with ``tokens``, if that is
        longer than ``longer_than``: taken out of the LRU, cut to the shared prefix."""
        best_key, best_len = None, longer_than
        for key, saved in self._items.items():
            if key[:2] != (adapter, scope):
                continue
            if (n := _common_prefix(saved.tokens, tokens)) > best_len:
                best_key, best_len = key, n
        if best_key is None:
            return None
        saved = self._items.pop(best_key)  # it becomes the live state; parked again on leave
        return _Saved(saved.tokens[:best_len], saved.data, best_len)

    def drop_adapter(self, part: str) -> None:
        """Forget the states of every stack that includes ``part``."""
        for key in [k for k in self._items if k[0] is not None and part in stack_parts(k[0])]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()


def check_room(n_tokens: int, context_window: int) -> int:
    """Tokens left for the answer after a prompt of ``n_tokens``; ContextOverflowError if none."""
    room = context_window - n_tokens
    if room <= 0:
        raise ContextOverflowError(
            f"The prompt has {n_tokens} tokens but the context window is "
            f"{context_window}: shorten it or start a new session."
        )
    return room


def set_adapters(lib, ctx: ctypes.c_void_p, handles: list[ctypes.c_void_p],  # type: ignore[no-untyped-def]
                 key: str | None) -> None:
    """Apply the LoRA ``handles`` (the stack ``key``) to the context ``ctx``, each at scale 1."""
    n = len(handles)
    if n == 0:
        lib.llama_set_adapters_lora(ctx, None, 0, None)
        return
    adapters = (lib.llama_adapter_lora_p_ctypes * n)(*handles)
    scales = (ctypes.c_float * n)(*([1.0] * n))
    if lib.llama_set_adapters_lora(ctx, adapters, n, scales) != 0:
        raise ModelLoadError(f"llama.cpp refused to apply the adapters {key!r}.")


def _common_prefix(a: np.ndarray | Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if len(diff) else n


def _trained_context(path: Path) -> int:
    """The context length the model was trained with, read from its metadata."""
    import llama_cpp

    probe = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        # a vocabulary-only load leaves n_ctx_train at 0: read the metadata key itself
        arch = probe.metadata.get("general.architecture", "")
        trained = probe.metadata.get(f"{arch}.context_length") or \
            llama_cpp.llama_model_n_ctx_train(probe.model)
        return int(trained) or MAX_DEFAULT_CONTEXT
    finally:
        probe.close()


_log_callback = None


def _route_native_logs(llama_cpp) -> None:
    """Send llama.cpp's own log lines to Python logging (DEBUG) instead of stderr."""
    global _log_callback
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _native_log.debug("%s", text.decode("utf-8", errors="replace").rstrip())

    _log_callback = callback  # keep a reference: ctypes does not
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
