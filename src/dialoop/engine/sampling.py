"""The default engine's sampler: llama.cpp's samplers driven one token at a time.

``Llama.generate`` samples inside llama-cpp-python; dialoop needs what it lacks (a
grammar checked token by token, ``logit_bias``, OpenAI's penalties over the whole answer,
logprobs paired with their token), so :class:`Sampling` builds the same chain from
llama.cpp's C samplers and runs it itself. Used by :mod:`dialoop.engine.llamacpp` and
:mod:`dialoop.engine.batched`.
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass

import numpy as np

from dialoop.engine import GenerationParams

__all__ = ["REPEAT_LAST_N", "SHORTLIST", "Sampling", "Step", "logprob_step"]

log = logging.getLogger(__name__)

SHORTLIST = 256  # greedy under a grammar: candidates checked before the whole vocabulary
REPEAT_LAST_N = 64  # tokens repeat_penalty looks back on (Llama's last_n_tokens_size)

_CANDIDATE = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


@dataclass(frozen=True)
class Step:
    """What logprobs report of one sampled token: its logprob and the top alternatives."""

    logprob: float
    top: tuple[tuple[int, float], ...]


class Sampling:
    """One generation's sampler, built from llama.cpp's samplers.

    The chain is Llama's (so seeded answers are what they were): penalties, then greedy,
    or top-k, typical, top-p, min-p, temperature and a seeded draw; ``logit_bias`` and
    OpenAI's frequency/presence penalties (counted over the whole answer) come first.

    A grammar is applied the way llama.cpp's own ``common_sampler_sample`` does it: the
    token is sampled without it, then checked alone against the grammar, and only if the
    grammar rejects it is the grammar applied to the whole vocabulary and the token drawn
    again. Masking 49k candidates costs milliseconds per token; checking one costs
    microseconds, and under a grammar the model mostly wants an allowed token anyway.

    Logprobs are read after bias and penalties, before the grammar: log-softmax of the
    candidates' logits (numpy over the vocabulary, no Python loop).
    """

    def __init__(self, lib, llm, params: GenerationParams, max_new: int, seed: int,  # type: ignore[no-untyped-def]
                 grammar: ctypes.c_void_p | None, *, ctx: ctypes.c_void_p | None = None) -> None:
        """``ctx``: the llama.cpp context whose logits are sampled (default: ``llm``'s own;
        the batched engine passes its shared context)."""
        self._lib = lib
        self._ctx = ctx if ctx is not None else llm.ctx
        self._vocab = lib.llama_model_get_vocab(llm.model)
        self._n_vocab = n_vocab = llm.n_vocab()
        self._k = params.logprobs
        self._greedy = params.greedy
        self.step: Step | None = None  # the last sampled token's logprobs, if asked for
        self._grammar = grammar
        self._pre = self._chain(self._pre_samplers(params, max_new))
        self._post = self._chain(self._post_samplers(params, seed))
        self._cand = np.zeros(n_vocab, dtype=_CANDIDATE)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._array = lib.llama_token_data_array(
            self._cand.ctypes.data_as(lib.llama_token_data_p), n_vocab, -1, False)
        self._one = np.zeros(1, dtype=_CANDIDATE)
        self._one_array = lib.llama_token_data_array(
            self._one.ctypes.data_as(lib.llama_token_data_p), 1, -1, False)

    def _pre_samplers(self, params: GenerationParams, max_new: int) -> list[ctypes.c_void_p]:
        lib, out = self._lib, []
        if params.logit_bias:
            bias = (lib.llama_logit_bias * len(params.logit_bias))(*params.logit_bias)
            out.append(lib.llama_sampler_init_logit_bias(self._n_vocab, len(params.logit_bias),
                                                         bias))
        if params.repeat_penalty != 1.0:
            out.append(lib.llama_sampler_init_penalties(
                self._n_vocab, REPEAT_LAST_N, params.repeat_penalty, 0.0, 0.0))
        if params.frequency_penalty or params.presence_penalty:
            out.append(lib.llama_sampler_init_penalties(
                self._n_vocab, max_new, 1.0, params.frequency_penalty, params.presence_penalty))
        return out

    def _post_samplers(self, params: GenerationParams, seed: int) -> list[ctypes.c_void_p]:
        lib = self._lib
        if params.greedy:
            return [lib.llama_sampler_init_greedy()]
        return [lib.llama_sampler_init_top_k(params.top_k), lib.llama_sampler_init_typical(1.0, 1),
                lib.llama_sampler_init_top_p(params.top_p, 1), lib.llama_sampler_init_min_p(0.0, 1),
                lib.llama_sampler_init_temp(params.temperature), lib.llama_sampler_init_dist(seed)]

    def _chain(self, samplers: list[ctypes.c_void_p]) -> ctypes.c_void_p:
        chain = self._lib.llama_sampler_chain_init(self._lib.llama_sampler_chain_default_params())
        for sampler in samplers:
            self._lib.llama_sampler_chain_add(chain, sampler)  # the chain owns it now
        return chain

    def sample(self, idx: int = -1) -> int:
        """The next token, from the logits of the last evaluated token; accepted by the chain.

        ``idx``: which output row of the last batch to sample from (the batched engine's
        sequences each have their own; -1: the last).
        """
        lib, cand = self._lib, self._cand
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(self._ctx, idx),
                                       shape=(self._n_vocab,))
        self._reset(logits)
        lib.llama_sampler_apply(self._pre, ctypes.byref(self._array))  # in place, in id order
        scores = cand["logit"].copy() if self._grammar or self._k is not None else None
        lib.llama_sampler_apply(self._post, ctypes.byref(self._array))
        token = self._selected().id  # (a sampler may point the array at its own buffer)
        if self._grammar and not self._allows(token):
            assert scores is not None
            token = self._best_allowed(scores) if self._greedy else None
            if token is None:
                token = self._resample(scores)
        if scores is not None and self._k is not None:
            self.step = logprob_step(scores, token, self._k)
        if not lib.llama_vocab_is_eog(self._vocab, token):  # an end is never accepted
            lib.llama_sampler_accept(self._pre, token)
            if self._grammar:
                lib.llama_sampler_accept(self._grammar, token)
            lib.llama_sampler_accept(self._post, token)
        return token

    def _best_allowed(self, scores: np.ndarray) -> int | None:
        """Greedy under a grammar: the most likely of the best ``SHORTLIST`` tokens that the
        grammar allows (exactly what masking the whole vocabulary would pick), if any."""
        idx = np.argpartition(-scores, SHORTLIST - 1)[:SHORTLIST]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        short = np.zeros(len(idx), dtype=_CANDIDATE)
        short["id"], short["logit"] = idx, scores[idx]
        array = self._lib.llama_token_data_array(
            short.ctypes.data_as(self._lib.llama_token_data_p), len(idx), -1, False)
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(array))
        allowed = np.flatnonzero(np.isfinite(short["logit"]))
        return int(idx[allowed[0]]) if len(allowed) else None

    def _resample(self, scores: np.ndarray) -> int:
        """Mask the whole vocabulary with the grammar and draw again."""
        lib = self._lib
        self._reset(scores)
        lib.llama_sampler_apply(self._grammar, ctypes.byref(self._array))
        lib.llama_sampler_apply(self._post, ctypes.byref(self._array))
        chosen = self._selected()
        token = chosen.id
        if not math.isfinite(chosen.logit):
            log.warning("the grammar allows no token here; ending the answer")
            token = int(lib.llama_vocab_eos(self._vocab))
        return token

    def _selected(self):  # type: ignore[no-untyped-def]
        assert self._array.selected >= 0
        return self._array.data[self._array.selected]  # a llama_token_data

    def _reset(self, logits: np.ndarray) -> None:
        """Fill the candidates with every token, in id order, with these logits."""
        self._cand["id"] = self._ids
        self._cand["logit"] = logits
        self._cand["p"] = 0.0
        self._array.data = self._cand.ctypes.data_as(self._lib.llama_token_data_p)
        self._array.size = self._n_vocab
        self._array.selected = -1
        self._array.sorted = False

    def _allows(self, token: int) -> bool:
        """Whether the grammar accepts ``token`` next (checked alone: microseconds)."""
        self._one["id"] = token
        self._one["logit"] = 0.0
        self._one_array.size = 1
        self._one_array.selected = -1
        self._one_array.sorted = False
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return bool(np.isfinite(self._one["logit"][0]))

    def close(self) -> None:
        for sampler in (self._pre, self._post, self._grammar):
            if sampler:
                self._lib.llama_sampler_free(sampler)
        self._pre = self._post = self._grammar = None


def logprob_step(scores: np.ndarray, token: int, k: int) -> Step:
    """Log-softmax of ``scores`` (float32 logits over the vocabulary): the token's and top-k."""
    x = scores.astype(np.float64)
    m = x.max()
    lse = m + np.log(np.exp(x - m).sum())
    top: tuple[tuple[int, float], ...] = ()
    if k:
        idx = np.argpartition(-x, k - 1)[:k]
        idx = idx[np.argsort(-x[idx], kind="stable")]
        top = tuple((int(i), float(x[i] - lse)) for i in idx)
    return Step(float(x[token] - lse), top)
