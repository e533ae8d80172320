"""Fitting a conversation into the model's context window.

The prompt is: the system prompt, then as many of the newest exchanges as fit,
then the new message, leaving room for the answer. Rules, in order:

1. A message too long on its own (the system prompt beyond a quarter of the
   budget, an old message beyond a quarter, the new message beyond what is left)
   is cut in the middle, with a visible note saying how much was cut.
2. Older exchanges are **dropped** in blocks of ``DROP_BLOCK`` exchanges: the cut
   point then stays put for several turns, so the KV cache of the kept prefix stays
   valid. With a ``summarize`` callback (``context_overflow = "summarize"``) what was
   dropped is replaced by its summary (:mod:`dialoop.dialogue.summary`), the first
   evidence item of the system message, labelled as a summary and never given as a
   user message. It is keyed by the messages it covers, so it too changes only when a
   block drops. The summary takes room, which may push out another block: the fit is
   redone until the summary covers exactly what was dropped.
3. If the new message still does not fit, it is cut further (then nothing older is
   kept, nor summarized: the message fills the window).

Evidence (lessons from the correction memory, knowledge-graph triples, document
passages, tool results) goes into the system message, numbered so that an answer
can cite it; it is never dropped to make room for older turns.

Cost: fitting is linear in what is kept, whatever the length of the history (a
request may carry thousands of messages). Earlier messages are tokenized one at a
time, newest first, each once, and only until the window is full; their sum plus
the template's per-message overhead (measured once with small probes) estimates
the prompt. The chosen prompt is then rendered and counted whole to correct the
estimate by a block if it was off. Text far longer than the window is cut by
characters before it is tokenized, so a 1 MB message is never tokenized whole.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dialoop.engine import Engine, Message
from dialoop.errors import ContextOverflowError
from dialoop.evidence import Evidence, render_evidence

if TYPE_CHECKING:
    from dialoop.dialogue.summary import Summary

__all__ = ["DROP_BLOCK", "Overflow", "Prompt", "build_prompt"]

DROP_BLOCK = 4  # exchanges dropped at a time
# No token is longer than this many characters in practice, so text of more than
# limit * _CHARS_PER_TOKEN characters has more than ``limit`` tokens.
_CHARS_PER_TOKEN = 16
_PROBE = "probe"  # content of the messages that measure the template's overhead
_SUMMARY_ROUNDS = 4  # fits redone because the summary pushed out another block

Overflow = Callable[[int, int], "Summary"]
"""``summarize(n, limit)``: the summary of the first ``n`` messages of the history, in
at most ``limit`` tokens (its text may be empty: nothing worth keeping)."""


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    tokens: int  # tokens of the rendered prompt
    dropped: int  # older messages left out
    truncated: list[str] = field(default_factory=list)  # which messages were cut
    evidence: list[Evidence] = field(default_factory=list)
    summary: Summary | None = None  # what stands for the dropped messages, if anything

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "prompt_tokens": self.tokens, "dropped_messages": self.dropped,
            "truncated": self.truncated, "evidence": [e.to_dict() for e in self.evidence]}
        if self.summary is not None:
            out["summary"] = self.summary.to_dict()
        return out


def build_prompt(
    engine: Engine,
    *,
    system: str | None,
    history: Sequence[Message],
    message: str | Sequence[Message],
    reserve: int,
    evidence: Sequence[Evidence] = (),
    summarize: Overflow | None = None,
) -> Prompt:
    """The messages to send: ``system`` (+ ``evidence``) + newest ``history`` + ``message``.

    ``message`` is the new user message, or the new input messages themselves (the
    tool results that answer the assistant's last calls), which are never cut.
    ``reserve`` is the room kept for the answer (at most half the window).
    ``summarize``, if given, stands in for the history that does not fit (see above).
    """
    budget = engine.context_window - min(reserve, engine.context_window // 2)
    head, truncated = _head(engine, system, evidence, budget)
    old = _History(engine, history, budget // 4)
    if isinstance(message, str):
        message = engine.escape(message)
        new: list[Message] = [{"role": "user", "content": message}]
        # The new message with the system prompt alone: if that does not fit, nothing
        # older can (too many characters is too many tokens, without counting them).
        alone = budget + 1
        if len(message) <= budget * _CHARS_PER_TOKEN:
            alone = _count(engine, [*head, *new])
        if alone > budget:  # even alone with the system prompt, it is too long: cut it
            messages, tokens = _cut_message(engine, head, message, budget)
            return Prompt(messages, tokens, len(old), [*truncated, "your message"],
                          list(evidence))
    else:
        new = [{"role": m["role"], "content": engine.escape(m["content"])} for m in message]
        alone = _count(engine, [*head, *new])
        if alone > budget:
            raise ContextOverflowError(
                f"The new messages take {alone:,} tokens with the system prompt, beyond the "
                f"{budget:,} this context window leaves: send shorter tool results.")
    start, tokens = _newest_that_fit(engine, head, old, new, budget, alone)
    if start and summarize is not None:
        summarized = _summarized(engine, system, evidence, old, new, budget, start, summarize)
        if summarized is not None:
            return summarized
    kept = old.messages(start)
    return Prompt([*head, *kept, *new], tokens, len(old) - len(kept),
                  [*truncated, *old.cut_notes(start)], list(evidence))


def _head(
    engine: Engine, system: str | None, evidence: Sequence[Evidence], budget: int,
) -> tuple[list[Message], list[str]]:
    """The system message (with the evidence, cut to a quarter of ``budget``), and whether
    it was cut."""
    if evidence:
        system = "\n\n".join(p for p in (system, render_evidence(evidence)) if p)
    if not system:
        return [], []
    # Contents are counted as the engine will render them: a control token spelled in a
    # message is one token as counted but several once escaped (about 8 for <|im_start|>).
    text, _, cut = _fit(engine, engine.escape(system), budget // 4)
    return [{"role": "system", "content": text}], ["system prompt"] if cut else []


def _summarized(
    engine: Engine, system: str | None, evidence: Sequence[Evidence], old: _History,
    new: list[Message], budget: int, start: int, summarize: Overflow,
) -> Prompt | None:
    """The prompt whose first ``start`` (or more) history messages are replaced by their
    summary, first of the evidence; None if there is nothing to say or no room for it
    (the system message, cut to a quarter of the budget, would cut the summary).

    The summary may push another block out: then the fit is redone with the summary of
    what is now dropped, until the summary covers exactly the dropped messages.
    """
    for _ in range(_SUMMARY_ROUNDS):
        summary = summarize(start, max(16, budget // 8))
        if not summary.text.strip():
            return None
        used = [summary.evidence(), *evidence]
        head, truncated = _head(engine, system, used, budget)
        if engine.escape(used[0].text) not in head[0]["content"]:
            return None  # a long system prompt left no room for it in the system message
        alone = _count(engine, [*head, *new])
        if alone > budget:
            return None
        fits, tokens = _newest_that_fit(engine, head, old, new, budget, alone)
        if fits <= start:
            if fits < start:  # more would fit, but the summary covers these: keep the rest
                tokens = _count(engine, [*head, *old.messages(start), *new])
            return Prompt([*head, *old.messages(start), *new], tokens, start,
                          [*truncated, *old.cut_notes(start)], used, summary)
        start = fits
    return None


def _newest_that_fit(
    engine: Engine, head: list[Message], old: _History, new: list[Message], budget: int,
    alone: int,
) -> tuple[int, int]:
    """Where the kept history starts (the fewest whole blocks dropped) and the prompt's tokens.

    ``alone`` is the tokens of the prompt with no history, which fits.
    """
    n = len(old)
    if n == 0:
        return 0, alone
    exchanges = n // 2
    # Candidate starts, fewest dropped first: whole blocks of exchanges, then nothing kept.
    starts = sorted({*(min(d, exchanges) * 2
                       for d in range(0, exchanges + DROP_BLOCK, DROP_BLOCK)), n})
    # Estimate: walk back from the newest message until the room is used up.
    room, per_message = budget - alone, _overhead(engine, head)
    used, first = 0.0, n
    for i in range(n - 1, -1, -1):
        used += old.tokens(i) + per_message
        if used > room:
            break
        first = i
    counted: dict[int, int] = {len(starts) - 1: alone}

    def tokens_at(k: int) -> int:  # the real count, rendered whole (each start at most once)
        if k not in counted:
            counted[k] = _count(engine, [*head, *old.messages(starts[k]), *new])
        return counted[k]

    k = bisect_left(starts, first)
    while tokens_at(k) > budget:  # the estimate was short: drop one more block
        k += 1
    while k > 0 and tokens_at(k - 1) <= budget:  # it was long: keep one more block
        k -= 1
    return starts[k], tokens_at(k)


def _cut_message(
    engine: Engine, head: list[Message], message: str, budget: int,
) -> tuple[list[Message], int]:
    """The system prompt and ``message`` cut to fit ``budget`` with it; their tokens."""
    fixed = _count(engine, [*head, {"role": "user", "content": ""}])
    if budget - fixed < 16:
        raise ContextOverflowError(
            f"The system prompt leaves no room in the {engine.context_window}-token context "
            "window: shorten it."
        )
    limit = budget - fixed
    for _ in range(3):  # the template can join a token or two across the message's edges
        text, _, _ = _fit(engine, message, limit)
        messages: list[Message] = [*head, {"role": "user", "content": text}]
        tokens = _count(engine, messages)
        if tokens <= budget:
            break
        limit -= tokens - budget
    return messages, tokens


class _History:
    """The earlier messages, each cut to ``limit`` tokens and counted when first needed.

    Only the newest messages, those that can still fit, are ever tokenized.
    """

    def __init__(self, engine: Engine, messages: Sequence[Message], limit: int) -> None:
        self._engine = engine
        self._messages = messages
        self._limit = limit
        self._fitted: dict[int, tuple[Message, int, bool]] = {}  # message, tokens, cut

    def __len__(self) -> int:
        return len(self._messages)

    def _get(self, i: int) -> tuple[Message, int, bool]:
        if i not in self._fitted:
            m = self._messages[i]
            content = self._engine.escape(m["content"])
            text, tokens, cut = _fit(self._engine, content, self._limit)
            self._fitted[i] = ({"role": m["role"], "content": text}, tokens, cut)
        return self._fitted[i]

    def tokens(self, i: int) -> int:
        return self._get(i)[1]

    def messages(self, start: int) -> list[Message]:
        return [self._get(i)[0] for i in range(start, len(self))]

    def cut_notes(self, start: int) -> list[str]:
        return [f"earlier {m['role']} message"
                for m, _, cut in map(self._get, range(start, len(self))) if cut]


def _count(engine: Engine, messages: list[Message]) -> int:
    return engine.count_tokens(engine.render(messages))


def _overhead(engine: Engine, head: list[Message]) -> float:
    """Tokens the chat template adds around one earlier message (beyond its own count).

    Measured with an exchange of probes between ``head`` and a final user message,
    where earlier messages sit, so that roles still alternate and templates that add
    something before the first message add it in both renderings.
    """
    probe: Message = {"role": "user", "content": _PROBE}
    pair: list[Message] = [probe, {"role": "assistant", "content": _PROBE}]
    grown = _count(engine, [*head, *pair, probe]) - _count(engine, [*head, probe])
    return (grown - 2 * engine.count_tokens(_PROBE)) / 2


def _fit(engine: Engine, text: str, limit: int) -> tuple[str, int, bool]:
    """``text`` cut in the middle to at most ``limit`` tokens, with a note; its tokens; and
    whether it was cut.

    Text of more than ``limit * _CHARS_PER_TOKEN`` characters cannot fit: it is cut
    without being tokenized whole.
    """
    bound = limit * _CHARS_PER_TOKEN
    if len(text) <= bound:
        total = engine.count_tokens(text)
        if total <= limit:
            return text, total, False
    # Binary search on kept characters (the note costs tokens too).
    lo, hi = 0, min(len(text), bound)
    best, best_tokens = _cut(text, 0), -1
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = _cut(text, mid)
        tokens = engine.count_tokens(candidate)
        if tokens <= limit:
            best, best_tokens, lo = candidate, tokens, mid + 1
        else:
            hi = mid - 1
    if best_tokens < 0:
        best_tokens = engine.count_tokens(best)
    return best, best_tokens, True


def _cut(text: str, keep: int) -> str:
    """Keep ``keep`` characters (two thirds from the start, one third from the end)."""
    head = keep * 2 // 3
    tail = keep - head
    removed = len(text) - keep
    note = f"\n[… {removed} characters cut to fit the context window …]\n"
    return text[:head] + note + (text[-tail:] if tail else "")
