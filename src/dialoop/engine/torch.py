"""The training-side twin: the same model in transformers (+ PEFT adapters).

A GGUF file is loaded dequantized by transformers (about 15 s for the bundled
model) and cached as safetensors under ``$DIALOOP_HOME/cache/models`` so the
next load takes well under a second. An HF folder is loaded as is.

Generation is a plain token loop over a ``DynamicCache`` rather than
``model.generate()``: the loop keeps the KV cache between calls (so the next turn
of a conversation only evaluates new tokens, as the llama.cpp engine does) and can
stop at any token on ``cancel()``. The kept cache is reused only by a prompt of the same
``cache_scope`` (the user), as in the llama.cpp engine; control tokens spelled in messages
are escaped before rendering (:mod:`dialoop.engine.control_tokens`).

A request may name a stack of loaded adapters (``"user:ann@v3+user:ann@v3#style"``, see
:mod:`dialoop.engine.adapters`): PEFT activates all of them, and every LoRA layer adds
each active adapter's delta.

Prefix- and prompt-tuning adapters (PEFT's prompt-learning kinds) are served too, one at a
time: their virtual tokens must sit in the KV cache before the prompt, so the first step of
a request runs the prompt through the PEFT model (:func:`prefill_virtual_tokens`) and the
rest of the loop continues on the base model with that cache. Such a request does not
reuse a kept cache (the virtual tokens are not the prompt's), and cannot be stacked.
dialoop's own bottleneck adapters (:mod:`dialoop.engine.bottleneck`) are served alone too:
hooks on the MLPs apply the one a request names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from dialoop.engine import Chunk, FinishReason, GenerationParams, Message, TokenLogprob, Usage
from dialoop.engine.adapters import STACK_SEP, stack_key, stack_parts
from dialoop.engine.bottleneck import BottleneckSet, is_bottleneck_folder
from dialoop.engine.control_tokens import ControlTokens
from dialoop.engine.models import ModelSource
from dialoop.engine.streaming import TextStream, TokenTrail
from dialoop.errors import ContextOverflowError, InvalidInputError, ModelLoadError, NotFoundError

__all__ = ["PROMPT_LEARNING", "TorchEngine", "dequantized_folder", "load_model",
           "prefill_virtual_tokens"]

log = logging.getLogger(__name__)

MAX_DEFAULT_CONTEXT = 8192
PROMPT_LEARNING = ("PREFIX_TUNING", "PROMPT_TUNING")  # PEFT types with virtual tokens


def dequantized_folder(gguf: Path, cache_dir: Path) -> Path:
    """An HF folder holding ``gguf``'s weights dequantized, made once and then reused."""
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    folder = cache_dir / f"{gguf.stem}-{key[:10]}"
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing %s into %s (once)", gguf, folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # transformers raises many kinds for a bad file
        raise ModelLoadError(f"transformers cannot load {gguf}: {exc}") from None
    # The loaded model remembers it came from GGUF and refuses save_pretrained();
    # its weights are plain float tensors by now, so drop that marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)  # atomic: a half-written cache is never used
    return folder


def load_model(
    source: ModelSource, cache_dir: Path, dtype: torch.dtype = torch.float32
) -> tuple[Any, Any]:
    """(model, tokenizer) for ``source``, in eval mode on the CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = source.folder or dequantized_folder(source.require_gguf(), cache_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"transformers cannot load {folder}: {exc}") from None
    model.eval()
    return model, tokenizer


class TorchEngine:
    """A causal LM in transformers, with PEFT adapters switched per request."""

    kind = "torch"

    def __init__(
        self,
        source: ModelSource,
        *,
        cache_dir: Path,
        threads: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer = load_model(source, cache_dir, dtype)
        self.name = source.name
        self.context_window = min(
            getattr(self.model.config, "max_position_embeddings", MAX_DEFAULT_CONTEXT),
            MAX_DEFAULT_CONTEXT,
        )
        if not self.tokenizer.chat_template:
            raise ModelLoadError(f"{source.name} has no chat template; dialoop needs a chat model.")
        self._eos = _eos_ids(self.model, self.tokenizer)
        # The added tokens the tokenizer marks special are the control tokens (the same
        # set llama.cpp marks CONTROL in a converted GGUF).
        self._control = ControlTokens.of(
            t.content for t in self.tokenizer.added_tokens_decoder.values() if t.special)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._peft: Any = None  # a PeftModel wrapping self.model once an adapter is loaded
        self._prompted: dict[str, Any] = {}  # name -> PeftModel of a prefix/prompt adapter
        self._bottlenecks: BottleneckSet | None = None  # made at the first bottleneck adapter
        self._active_adapter: str | None = None
        self._kv: Any = None  # DynamicCache of the last call
        self._kv_ids: list[int] = []  # the tokens whose keys/values _kv holds
        self._kv_scope: str | None = None  # the cache scope of the prompt that made _kv

    # -- text ---------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(
            self._control.escape_messages(messages), tokenize=False, add_generation_prompt=True
        )

    def escape(self, text: str) -> str:
        return self._control.escape(text)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The tokens generation starts from: the rendered prompt, special tokens parsed."""
        return self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]

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
        ids = self._prompt_tokens(messages)
        room = self.context_window - len(ids)
        if room <= 0:
            raise ContextOverflowError(
                f"The prompt has {len(ids)} tokens but the context window is "
                f"{self.context_window}: shorten it or start a new session."
            )
        if adapter is not None:
            adapter = stack_key(stack_parts(adapter))
            parts = stack_parts(adapter)
            for part in parts:
                if part not in self.adapters:
                    raise NotFoundError(f"No adapter named {part!r} is loaded in this engine.")
            if len(parts) > 1 and any(part in self._prompted or self._is_bottleneck(part)
                                      for part in parts):
                raise InvalidInputError(
                    f"{adapter!r} stacks a prefix/prompt-tuning or bottleneck adapter: those "
                    "serve alone."
                )
        return self._generate(ids, params, min(params.max_tokens, room), adapter, cache_scope,
                              stop or threading.Event())

    def _check_params(self, params: GenerationParams) -> None:
        if params.grammar is not None:
            raise InvalidInputError(
                "The torch engine cannot enforce a grammar: grammar/constrained decoding "
                "(response_format, tool arguments) is only available on the llamacpp engine."
            )
        n_vocab = len(self.tokenizer)
        for token, _ in params.logit_bias:
            if token >= n_vocab:
                raise InvalidInputError(
                    f"logit_bias names token {token}, but {self.name} has {n_vocab} tokens."
                )

    def _generate(
        self, ids: list[int], params: GenerationParams, max_new: int, adapter: str | None,
        scope: str | None, stop: threading.Event,
    ) -> Iterator[Chunk]:
        prompted = self._prompted.get(adapter) if adapter is not None else None
        bottleneck = adapter if adapter is not None and self._is_bottleneck(adapter) else None
        # these adapters run on the base model: any LoRA layers switched off
        lora_off = (self._peft.disable_adapter()
                    if (prompted is not None or bottleneck) and self._peft is not None
                    else nullcontext())
        with self._lock, torch.inference_mode(), lora_off:
            self._cancel.clear()
            start = time.perf_counter()
            if self._bottlenecks is not None:
                self._bottlenecks.active = bottleneck  # None: the MLP hooks do nothing
            if adapter != self._active_adapter or prompted is not None:
                # keys/values depend on the weights that made them; a prompt-learning
                # adapter's cache holds its virtual tokens first: nothing kept is reusable
                self._forget_kv()
                self._active_adapter = adapter
            if prompted is not None:
                model, cached = prompted.get_base_model(), 0
            else:
                model = self.model if bottleneck is not None else self._use_adapter(adapter)
                cached = self._reuse_prefix(ids, scope)
            feed = torch.tensor([ids[cached:]])  # (1, T_new)
            seen = torch.tensor([ids])  # (1, T) every token so far, for the repeat penalty
            processors = _processors(params)
            generator = torch.Generator().manual_seed(
                params.seed if params.seed is not None else random.getrandbits(31)
            )
            text = TextStream(params.stop)
            trail: TokenTrail[TokenLogprob] = TokenTrail()
            unfed: list[TokenLogprob] = []  # tokens whose text has not reached the stream yet
            out: list[int] = []
            shown = ""
            first: float | None = None
            finish: FinishReason = "length"
            while len(out) < max_new:
                if prompted is not None and not out:  # virtual tokens, then the prompt
                    last, self._kv = prefill_virtual_tokens(prompted, feed)
                    logits = last[:, None, :]  # (1, 1, vocab)
                else:
                    logits = model(input_ids=feed, past_key_values=self._kv,
                                   use_cache=True).logits
                self._kv_ids += feed[0].tolist()
                raw = _openai_adjust(logits[:, -1, :].float(), out, params)  # (1, vocab)
                scores = processors(seen, raw.clone())  # raw stays as logprobs report it
                token = _pick(scores, params, generator)
                if first is None:
                    first = time.perf_counter() - start
                if token in self._eos:
                    finish = "stop"
                    break
                out.append(token)
                if params.logprobs is not None:
                    unfed.append(self._token_logprob(raw, token, params.logprobs))
                # Decode everything so far and emit the difference: per-token decoding
                # loses spaces with some tokenizers. A trailing U+FFFD is half a character.
                full = self.tokenizer.decode(out, skip_special_tokens=True)
                if not full.endswith("\ufffd"):
                    before = text.decoded
                    piece = text.feed(full[len(shown):].encode())
                    shown = full
                    for item in unfed:
                        trail.add(item, before, text.decoded)
                    unfed.clear()
                    if piece:
                        yield Chunk(piece, logprobs=trail.take(text.shown))
                if text.stopped:
                    finish = "stop"
                    break
                if self._cancel.is_set() or stop.is_set():
                    finish = "cancelled"
                    break
                feed = torch.tensor([[token]])
                seen = torch.cat([seen, feed], dim=1)
            tail = self.tokenizer.decode(out, skip_special_tokens=True)[len(shown):]
            before = text.decoded
            rest = text.feed(tail.encode()) + text.flush()
            for item in unfed:
                trail.add(item, before, text.decoded)
            usage = Usage(len(ids), len(out), cached, time.perf_counter() - start, first)
            yield Chunk(rest, finish_reason=finish, usage=usage,
                        logprobs=trail.rest(text.shown, stopped=text.stopped))

    def _token_logprob(self, scores: torch.Tensor, token: int, k: int) -> TokenLogprob:
        """``token``'s log-probability under ``scores`` (1, vocab), with the top ``k``."""
        logprobs = torch.log_softmax(scores[0].double(), dim=-1)
        top = ()
        if k:
            values, indices = torch.topk(logprobs, k)
            top = tuple((self._piece(i), float(v), tuple(self._piece(i).encode()))
                        for v, i in zip(values.tolist(), indices.tolist(), strict=True))
        piece = self._piece(token)
        return TokenLogprob(piece, float(logprobs[token]), tuple(piece.encode()), top)

    def _piece(self, token: int) -> str:
        return self.tokenizer.decode([token])

    def _reuse_prefix(self, ids: list[int], scope: str | None) -> int:
        """Crop the kept KV cache to its common prefix with ``ids``; return that length.

        A cache made in another scope is not reused at all, whatever it shares with ``ids``.
        """
        from transformers import DynamicCache

        kept = self._kv_ids if scope == self._kv_scope else []
        self._kv_scope = scope
        n = 0
        for a, b in zip(kept, ids[:-1], strict=False):  # at least one token to feed
            if a != b:
                break
            n += 1
        if n == 0 or self._kv is None:
            self._kv, self._kv_ids = DynamicCache(config=self.model.config), []
            return 0
        if len(self._kv_ids) > n:  # a negative count removes that many (all versions agree)
            self._kv.crop(n - len(self._kv_ids))
        self._kv_ids = self._kv_ids[:n]
        return n

    def cancel(self) -> None:
        self._cancel.set()

    # -- adapters ---------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Load a PEFT adapter folder (``adapter_config.json`` + weights) as ``name``."""
        from peft import PeftModel

        if STACK_SEP in name:
            raise InvalidInputError(f"Load the parts of {name!r} one by one, not as a stack.")
        with self._lock:
            if is_bottleneck_folder(Path(path)):
                if self._bottlenecks is None:
                    self._bottlenecks = BottleneckSet(self.model)
                self._bottlenecks.add(name, Path(path))
                self._forget_kv()
                return
            config = Path(path) / "adapter_config.json"
            if not config.is_file():
                raise ModelLoadError(f"{path} is not a PEFT adapter folder (no adapter_config).")
            if json.loads(config.read_text()).get("peft_type") in PROMPT_LEARNING:
                # A PeftModel of its own: PEFT keeps one adapter kind per PeftModel, and a
                # prompt-learning one leaves the base model's layers as they are.
                if self._peft is not None and name in self._peft.peft_config:
                    self._peft.delete_adapter(name)
                self._prompted[name] = PeftModel.from_pretrained(self.model, str(path)).eval()
                self._forget_kv()
                return
            self._prompted.pop(name, None)
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            else:
                if name in self._peft.peft_config:
                    self._peft.delete_adapter(name)
                self._peft.load_adapter(str(path), adapter_name=name)
            self._peft.eval()
            self._forget_kv()

    def unload_adapter(self, name: str) -> None:
        with self._lock:
            if self._prompted.pop(name, None) is not None or self._is_bottleneck(name):
                if self._bottlenecks is not None:
                    self._bottlenecks.remove(name)
                if self._active_adapter == name:
                    self._active_adapter = None
                self._forget_kv()
                return
            if self._peft is None or name not in self._peft.peft_config:
                return
            if self._active_adapter is not None and name in stack_parts(self._active_adapter):
                self._active_adapter = None
            if len(self._peft.peft_config) == 1:
                self.model = self._peft.unload()  # the base model, without LoRA layers
                self._peft = None
            else:
                self._peft.delete_adapter(name)
            self._forget_kv()

    @property
    def adapters(self) -> list[str]:
        lora = list(self._peft.peft_config) if self._peft is not None else []
        bottlenecks = self._bottlenecks.names() if self._bottlenecks is not None else []
        return sorted([*lora, *self._prompted, *bottlenecks])

    def _is_bottleneck(self, name: str) -> bool:
        return self._bottlenecks is not None and name in self._bottlenecks

    def _use_adapter(self, key: str | None) -> Any:
        """The module to run for this request, with the LoRA-family stack ``key`` active
        (or none)."""
        if self._peft is None:
            return self.model
        if key is None:
            return _WithoutAdapters(self._peft)
        # PeftModel.set_adapter takes one name (the config its forward reads); its tuner
        # takes several, all active at once.
        parts = list(stack_parts(key))
        self._peft.set_adapter(parts[0])
        self._peft.base_model.set_adapter(parts, inference_mode=True)
        return self._peft

    def _forget_kv(self) -> None:
        self._kv, self._kv_ids = None, []

    def close(self) -> None:
        with self._lock:
            self._forget_kv()
            self._peft = None
            self._prompted.clear()
            self._bottlenecks = None
            self.model = None


class _WithoutAdapters:
    """Calls the PEFT model with every adapter switched off."""

    def __init__(self, peft: Any) -> None:
        self._peft = peft

    def __call__(self, **kwargs: Any) -> Any:
        with self._peft.disable_adapter():
            return self._peft(**kwargs)


def _processors(params: GenerationParams) -> Any:
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    chain: list[Any] = []
    if params.repeat_penalty != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(params.repeat_penalty))
    if not params.greedy:
        chain.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            chain.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1:
            chain.append(TopPLogitsWarper(params.top_p))
    return LogitsProcessorList(chain)


def _openai_adjust(logits: torch.Tensor, out: list[int], params: GenerationParams) -> torch.Tensor:
    """``logits`` (1, vocab) with logit_bias and OpenAI's frequency/presence penalties,
    counted over the answer so far (``out``)."""
    if params.logit_bias:
        ids = torch.tensor([t for t, _ in params.logit_bias])
        logits[0, ids] += torch.tensor([b for _, b in params.logit_bias])
    if out and (params.frequency_penalty or params.presence_penalty):
        counts = torch.bincount(torch.tensor(out), minlength=logits.shape[-1])[: logits.shape[-1]]
        logits[0] -= counts * params.frequency_penalty + (counts > 0) * params.presence_penalty
    return logits


def _pick(scores: torch.Tensor, params: GenerationParams, generator: torch.Generator) -> int:
    if params.greedy:
        return int(scores.argmax(dim=-1))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found


def prefill_virtual_tokens(model: Any, input_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Run a prompt (1, T) through a prefix- or prompt-tuned PEFT model once, the way it was
    trained; return the last position's logits (1, vocab) and the base model's KV cache,
    which then holds the virtual tokens and the prompt. Later tokens go to the base model
    (``model.get_base_model()``) with that cache, one step at a time.

    (PEFT's own ``generate()`` does this through transformers' generation, which in
    transformers 5 drops a prefix-tuning cache for one of its own: the prefix is ignored.)
    """
    config = model.active_peft_config
    base = model.get_base_model()
    n, t = config.num_virtual_tokens, input_ids.shape[1]
    if config.peft_type == "PREFIX_TUNING":
        cache = model.get_prompt(batch_size=1, max_cache_len=n + t)  # n keys/values per layer
        # positions n … n+T-1, as in training (PEFT shifts position ids past the prefix)
        out = base(input_ids=input_ids, past_key_values=cache, use_cache=True)
    elif config.peft_type == "PROMPT_TUNING":
        prompt = model.get_prompt(batch_size=1)  # (1, n, C)
        embeds = torch.cat([prompt.to(model.word_embeddings.weight.dtype),
                            model.word_embeddings(input_ids)], dim=1)  # (1, n + T, C)
        out = base(inputs_embeds=embeds, use_cache=True)
    else:
        raise InvalidInputError(f"{config.peft_type} has no virtual tokens to prefill.")
    return out.logits[:, -1], out.past_key_values
