"""Batched decoding: many answers at once in one llama.cpp context.

A 135M model decoding one sequence spends most of each token's time reading the weights
and in per-token overhead, not arithmetic. Decoding ``slots`` sequences in one
``llama_decode`` reads the weights once for all of them, so concurrent users share the
cost (see ``benchmarks/bench_server.py``, config ``b16``).

One scheduler thread owns the context. Each step it builds one ``llama_batch``: the last
sampled token of every running answer (one KV sequence each, seq id = slot), then, in the
room left, chunks of the prompts of answers that joined since (continuous batching: a new
request starts at the next step, without waiting for the others to finish), all in slot
order, which lets llama.cpp decode them in one pass over the weights. After the
decode, each answer samples its next token from its own output row with its own
:class:`~dialoop.engine.sampling.Sampling` (so greedy, seeds, ``logit_bias``, penalties,
grammars and logprobs work as in :mod:`~dialoop.engine.llamacpp`). The caller's thread
turns the tokens into text (:class:`~dialoop.engine.streaming.TextStream`), so stop
strings, finish reasons and usage are the same as there.

What differs from :class:`~dialoop.engine.llamacpp.LlamaCppEngine`:

- **Prefix reuse per slot, within a scope.** When an answer ends, its sequence keeps its
  KV state (prompt and answer), labelled with the answer's ``cache_scope`` and adapter
  stack. A new answer takes the free slot whose kept tokens share the longest prefix with
  its prompt *among the slots of its own scope and stack* and evaluates only the rest;
  any other slot it takes is cleared first. So a state never serves another scope, and
  ``Usage.cached_tokens`` counts only the answer's own scope's tokens. There is no
  parking of states (no LRU beyond the slots themselves).
- **Adapters by group.** llama.cpp applies LoRA adapters to a whole context, so only
  answers with the same adapter stack decode together: a request for another stack waits
  (first come, first served) until the running group has drained, then the context
  switches. Mixed traffic therefore loses the batching benefit.
- **Stopping mid-prompt** happens between steps: a prompt is evaluated in chunks of at
  most ``_BATCH`` tokens (``_PROMPT_CHUNK`` while other answers are decoding), and
  ``stop`` is checked before each.
- **Context window** is per answer (``context_window`` tokens for each of the ``slots``
  sequences; default the model's own, at most 4096, since the KV cache holds all of them).

Tokenizing, rendering, control-token escaping, grammars and adapter files are the
:class:`LlamaCppEngine`'s: one is opened with a tiny context for them, on the same
weights this engine decodes with.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dialoop.engine import Chunk, FinishReason, GenerationParams, Message, TokenLogprob, Usage
from dialoop.engine.adapters import stack_key, stack_parts
from dialoop.engine.llamacpp import (
    LlamaCppEngine,
    _common_prefix,
    _trained_context,
    check_room,
    default_threads,
    set_adapters,
)
from dialoop.engine.sampling import Sampling, Step
from dialoop.engine.streaming import TextStream, TokenTrail
from dialoop.errors import EngineError, ModelLoadError

__all__ = ["BatchedEngine"]

log = logging.getLogger(__name__)

MAX_DEFAULT_CONTEXT = 4096  # per answer: the KV cache holds ``slots`` of them
_BATCH = 512  # tokens per llama_decode
_PROMPT_CHUNK = 128  # prompt tokens per step while other answers are decoding
_HELPER_CONTEXT = 256  # the text helper's own context: never decoded with
_FILLER = 0  # the token that fills an idle slot between running ones (any token will do)
_POLL = 0.1  # seconds between checks of ``stop`` while an answer waits for tokens


@dataclass(eq=False)
class _Answer:
    """One request as the scheduler sees it. ``seq`` and ``pos`` belong to the scheduler."""

    tokens: list[int]
    max_new: int
    key: str | None  # the adapter stack
    scope: str | None  # the cache scope: KV state is reused only within it
    sampling: Sampling
    stop: threading.Event
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    seq: int = -1  # KV sequence (slot), once running
    pos: int = 0  # tokens of this answer in the KV cache
    last: int = -1  # the last sampled token, fed at the next step
    fed: list[int] = field(default_factory=list)  # answer tokens in the KV cache
    cached: int = 0  # prompt tokens found in the slot's kept KV state
    made: int = 0  # tokens sampled
    gone: bool = False  # the caller stopped reading (stop string, closed iterator)
    cancelled: bool = False  # ended by ``stop`` or cancel(), not by the model


class BatchedEngine:
    """A GGUF model decoding up to ``slots`` answers at once in one llama.cpp context."""

    kind = "llamacpp"

    def __init__(self, path: Path, *, slots: int = 16, name: str | None = None,
                 context_window: int | None = None, threads: int | None = None) -> None:
        import llama_cpp

        if slots < 1:
            raise ValueError("a batched engine needs at least one slot")
        self._lib = lib = llama_cpp
        threads = threads or default_threads()
        # Only tokenizing, rendering and adapter files: a tiny context of its own.
        self._text = LlamaCppEngine(path, name=name, context_window=_HELPER_CONTEXT,
                                    threads=threads, reuse_prefix=False)
        self.name = self._text.name
        self.slots = slots
        per_answer = context_window or min(_trained_context(path), MAX_DEFAULT_CONTEXT)
        params = lib.llama_context_default_params()
        params.n_ctx = per_answer * slots
        params.n_batch = params.n_ubatch = _BATCH
        params.n_seq_max = slots
        params.kv_unified = False  # each sequence its own cells: n_ctx / slots each
        params.n_threads = params.n_threads_batch = threads
        self._ctx = lib.llama_init_from_model(self._text._llm.model, params)
        if not self._ctx:
            self._text.close()
            raise ModelLoadError(f"llama.cpp cannot make a context of {slots} sequences of "
                                 f"{per_answer} tokens: lower batch_slots or context_window.")
        self.context_window = int(lib.llama_n_ctx_seq(self._ctx))
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(_BATCH, 0, 1)
        self._vocab = self._text._vocab
        self._cond = threading.Condition()
        self._waiting: deque[_Answer] = deque()
        self._running: list[_Answer] = []
        self._free = list(range(slots))  # sequence ids, the longest free first
        # what each free slot's KV sequence holds: (scope, adapter stack, tokens)
        self._kept: dict[int, tuple[str | None, str | None, list[int]]] = {}
        self._group: str | None = None  # the adapter stack applied to the context
        self._holds = 0  # adapter loads waiting for the running group to drain
        self._closed = False
        self._grammar_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dialoop-batch", daemon=True)
        self._thread.start()

    @property
    def size(self) -> int:
        """Answers decoded at once (the server admits this many)."""
        return self.slots

    # -- text: the LlamaCppEngine's -------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        return self._text.render(messages)

    def escape(self, text: str) -> str:
        return self._text.escape(text)

    def count_tokens(self, text: str) -> int:
        return self._text.count_tokens(text)

    # -- generation (the caller's thread) ----------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        adapter: str | None = None,
        cache_scope: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """As :meth:`LlamaCppEngine.stream`; KV state is reused within ``cache_scope`` only."""
        self._text._check_params(params)
        tokens = self._text._prompt_tokens(messages)
        room = check_room(len(tokens), self.context_window)
        key = stack_key(stack_parts(adapter)) if adapter is not None else None
        return self._generate(tokens, params, min(params.max_tokens, room), key, cache_scope,
                              stop or threading.Event())

    def _generate(self, tokens: list[int], params: GenerationParams, max_new: int,
                  key: str | None, scope: str | None, stop: threading.Event
                  ) -> Iterator[Chunk]:
        start = time.perf_counter()
        self._text.lora_handles(key)  # NotFoundError now, not in the scheduler
        seed = params.seed if params.seed is not None else random.getrandbits(31)
        with self._grammar_lock:
            grammar = self._text._grammar_sampler(params.grammar)
        sampling = Sampling(self._lib, self._text._llm, params, max_new, seed, grammar,
                            ctx=self._ctx)
        answer = _Answer(tokens, max_new, key, scope, sampling, stop)
        with self._cond:
            if self._closed:
                sampling.close()
                raise EngineError("The engine is closed.")
            self._waiting.append(answer)
            self._cond.notify_all()
        text = TextStream(params.stop)
        trail: TokenTrail[TokenLogprob] = TokenTrail()
        first: float | None = None
        n = 0
        finish: FinishReason = "length"
        try:
            for token, step in self._tokens(answer):
                if first is None:
                    first = time.perf_counter() - start
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                n += 1
                data = self._text._llm.detokenize([token])
                before = text.decoded
                piece = text.feed(data)
                if step is not None:
                    trail.add(self._text._token_logprob(data, step), before, text.decoded)
                if piece:
                    yield Chunk(piece, logprobs=trail.take(text.shown))
                if text.stopped:
                    finish = "stop"
                    break
                if stop.is_set() or answer.cancelled:
                    finish = "cancelled"
                    break
                if n >= max_new:
                    break
            else:
                if stop.is_set() or answer.cancelled:
                    finish = "cancelled"
        finally:
            answer.gone = True  # the scheduler drops it at its next step
            with self._cond:
                self._cond.notify_all()
        usage = Usage(len(tokens), n, answer.cached, time.perf_counter() - start, first)
        yield Chunk(text.flush(), finish_reason=finish, usage=usage,
                    logprobs=trail.rest(text.shown, stopped=text.stopped))

    def _tokens(self, answer: _Answer) -> Iterator[tuple[int, Step | None]]:
        """The answer's tokens as the scheduler samples them; ends early on ``stop``."""
        while True:
            try:
                item = answer.out.get(timeout=_POLL)
            except queue.Empty:
                if answer.stop.is_set():
                    answer.cancelled = True
                    return
                continue
            if isinstance(item, BaseException):
                raise item
            if item is None:
                return
            yield item

    def cancel(self) -> None:
        """Stop every answer in progress or waiting (one answer's: pass ``stop``)."""
        with self._cond:
            for answer in (*self._running, *self._waiting):
                answer.cancelled = True
            self._cond.notify_all()

    # -- the scheduler thread ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or bool(self._running)
                                    or self._admissible())
                if self._closed:
                    return
                self._drop_stopped()
                self._admit()
                work = list(self._running)
            if not work:
                continue
            try:
                self._step(work)
            except Exception as exc:  # a failed decode ends the answers it held
                log.exception("batched decode failed")
                error = exc if isinstance(exc, EngineError) else EngineError(
                    f"llama.cpp failed while decoding: {exc}")
                with self._cond:
                    for answer in work:
                        self._end(answer, error)

    def _admissible(self) -> bool:
        """Whether a waiting answer can start (or must be dropped) now; under the lock."""
        if any(a.gone or a.cancelled or a.stop.is_set() for a in self._waiting):
            return True
        return bool(self._waiting and self._free and not self._holds
                    and (not self._running or self._waiting[0].key == self._group))

    def _drop_stopped(self) -> None:
        for answer in [a for a in self._waiting if a.gone or a.cancelled or a.stop.is_set()]:
            self._waiting.remove(answer)
            answer.cancelled = True
            answer.sampling.close()
            answer.out.put(None)

    def _admit(self) -> None:
        """Start waiting answers, first come first served, while they share the running
        group's adapter stack (any stack when nothing runs); under the lock."""
        while self._waiting and self._free and not self._holds:
            head = self._waiting[0]
            if head.key != self._group:
                if self._running:
                    return
                try:
                    set_adapters(self._lib, self._ctx, self._text.lora_handles(head.key),
                                 head.key)
                    self._forget_kept()  # made with other weights
                    self._group = head.key
                except Exception as exc:  # unloaded while it waited
                    self._waiting.popleft()
                    head.sampling.close()
                    head.out.put(exc)
                    continue
            self._waiting.popleft()
            self._take_slot(head)
            self._running.append(head)

    def _take_slot(self, answer: _Answer) -> None:
        """Give ``answer`` the free slot whose kept state of its own scope and stack shares
        the longest prefix with its prompt (else an empty slot, else the longest free), and
        cut that state to the shared prefix; under the lock."""
        def shared(seq: int) -> int:
            scope, key, tokens = self._kept.get(seq, (None, None, []))
            if (scope, key) != (answer.scope, answer.key):
                return 0
            return _common_prefix(tokens, answer.tokens)

        best = max(self._free, key=lambda s: (shared(s), s not in self._kept))
        keep = min(shared(best), len(answer.tokens) - 1)  # the last prompt token gives logits
        self._free.remove(best)
        self._kept.pop(best, None)
        self._lib.llama_memory_seq_rm(self._mem, best, keep if keep > 0 else -1, -1)
        answer.seq, answer.pos, answer.cached = best, max(keep, 0), max(keep, 0)

    def _step(self, work: list[_Answer]) -> None:
        """One llama_decode for ``work``: each decoding answer's last token, then prompt
        chunks in the room left; then each answer whose logits came out samples."""
        lib, batch = self._lib, self._batch
        live: list[_Answer] = []
        outputs: list[tuple[_Answer, int]] = []
        for answer in work:
            if answer.gone or answer.cancelled or answer.stop.is_set():
                answer.cancelled = answer.cancelled or answer.stop.is_set()
                with self._cond:
                    self._end(answer, None)
            else:
                live.append(answer)
        decoding = [a for a in live if a.pos >= len(a.tokens)]
        parts: list[tuple[_Answer, list[int], int, bool]] = []  # tokens from pos, logits
        for answer in decoding:
            parts.append((answer, [answer.last], answer.pos, True))
            answer.fed.append(answer.last)
            answer.pos += 1
        room = _BATCH - self.slots  # prompt tokens; a token each for the rest (see _gaps)
        budget = _PROMPT_CHUNK if decoding else _BATCH
        for answer in live:
            if answer.pos >= len(answer.tokens) or answer in decoding:
                continue
            take = min(len(answer.tokens) - answer.pos, budget, room)
            if take <= 0:
                break
            end = answer.pos + take
            parts.append((answer, answer.tokens[answer.pos:end], answer.pos,
                          end == len(answer.tokens)))
            answer.pos = end
            budget -= take
            room -= take
        # In slot order: llama.cpp cuts a batch over per-sequence KV streams into runs of
        # consecutive sequence ids (llama_batch_allocr::split_equal) and makes one pass
        # over the weights per run, so answers written in admission order, with their
        # kept prefixes in scattered slots, cost up to one pass each (2.5x slower steps).
        fillers = self._gaps({answer.seq for answer, *_ in parts})
        rows = [(a.seq, a, tokens, first, logits) for a, tokens, first, logits in parts]
        rows += [(seq, None, [_FILLER], pos, False) for seq, pos in fillers]
        n = 0
        for seq, owner, tokens, first, logits in sorted(rows, key=lambda row: row[0]):
            for i, token in enumerate(tokens):
                last = logits and i == len(tokens) - 1
                self._put(n, token, first + i, seq, last)
                if last and owner is not None:
                    outputs.append((owner, n))
                n += 1
        if n == 0:
            return
        batch.n_tokens = n
        rc = lib.llama_decode(self._ctx, batch)
        for seq, pos in fillers:
            lib.llama_memory_seq_rm(self._mem, seq, pos, -1)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc} for a batch of {n} tokens.")
        for answer, idx in outputs:
            token = answer.sampling.sample(idx)
            answer.made += 1
            answer.last = token
            answer.out.put((token, answer.sampling.step))
            if lib.llama_vocab_is_eog(self._vocab, token) or answer.made >= answer.max_new:
                with self._cond:
                    self._end(answer, None)

    def _gaps(self, seqs: set[int]) -> list[tuple[int, int]]:
        """(seq, pos) of a filler token for each idle sequence between those in the batch:
        at the end of what that sequence holds, without logits, removed after the decode.

        Each run of consecutive sequence ids decodes in a pass of its own (see ``_step``),
        so a free slot between two running answers would cost a second pass over the
        weights; a filler row costs one token's arithmetic. (llama.cpp's own server keeps
        one KV stream for all its slots instead, ``kv_unified``, and pays for attention
        over every slot's cells.)
        """
        if not seqs:
            return []
        return [(seq, int(self._lib.llama_memory_seq_pos_max(self._mem, seq)) + 1)
                for seq in range(min(seqs), max(seqs)) if seq not in seqs]

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _end(self, answer: _Answer, error: BaseException | None) -> None:
        """Take a running answer out: its KV sequence cleared, its sampler freed; under the
        lock."""
        if answer not in self._running:
            return
        self._running.remove(answer)
        if error is None:  # kept for the next answer of the same scope and stack
            held = answer.tokens[:answer.pos] if answer.pos <= len(answer.tokens) else \
                answer.tokens + answer.fed
            self._kept[answer.seq] = (answer.scope, answer.key, held)
        else:
            self._lib.llama_memory_seq_rm(self._mem, answer.seq, -1, -1)
        self._free.append(answer.seq)
        answer.sampling.close()
        answer.out.put(error)
        self._cond.notify_all()

    # -- adapters --------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        self._while_unused(name, lambda: self._text.load_adapter(name, path))

    def unload_adapter(self, name: str) -> None:
        self._while_unused(name, lambda: self._text.unload_adapter(name))

    @property
    def adapters(self) -> list[str]:
        return self._text.adapters

    def _while_unused(self, part: str, change) -> None:  # type: ignore[no-untyped-def]
        """Run ``change`` once no running answer uses ``part`` (new answers wait meanwhile):
        the context must not hold a freed adapter."""
        with self._cond:
            self._holds += 1
            try:
                self._cond.wait_for(lambda: not self._running or not self._uses(part))
                if self._uses(part):  # nothing runs: the context is ours to change
                    set_adapters(self._lib, self._ctx, [], None)
                    self._forget_kept()
                    self._group = None
                change()
            finally:
                self._holds -= 1
                self._cond.notify_all()

    def _forget_kept(self) -> None:
        """Clear every free slot's kept state (the weights change); under the lock, with
        nothing running."""
        self._lib.llama_memory_clear(self._mem, True)
        self._kept.clear()

    def _uses(self, part: str) -> bool:
        return self._group is not None and part in stack_parts(self._group)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        closed = EngineError("The engine was closed while answering.")
        with self._cond:
            for answer in list(self._running):
                self._end(answer, closed)
            for answer in self._waiting:
                answer.sampling.close()
                answer.out.put(closed)
            self._waiting.clear()
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._ctx)
        self._ctx = ctypes.c_void_p()
        self._text.close()
