"""Fitting a conversation into the model's context window.

The prompt is: the system prompt, then as many of the newest exchanges as fit,
then the new message, leaving room for the answer. Rules, in order:

1. A message too long on its own (the system prompt beyond a quarter of the
   budget, an old message beyond a quarter, the new message beyond what is left)
   is cut in the middle, with a visible note saying how much was cut.
2. Older exchanges are **dropped**, not summarized (a 135M model writes poor
   summaries, and a summary would change every turn, defeating prefix reuse).
   They are dropped in blocks of ``DROP_BLOCK`` exchanges: the cut point then
   stays put for several turns, so the KV cache of the kept prefix stays valid.
3. If the new message still does not fit, it is cut further.

Evidence (lessons from the correction memory, knowledge-graph triples, document
passages, tool results) goes into the system message, numbered so that an answer
can cite it; it is never dropped to make room for older turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dialoop.engine import Engine, Message
from dialoop.errors import ContextOverflowError
from dialoop.evidence import Evidence, render_evidence

__all__ = ["DROP_BLOCK", "Prompt", "build_prompt"]

DROP_BLOCK = 4  # exchanges dropped at a time


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    tokens: int  # tokens of the rendered prompt
    dropped: int  # older messages left out
    truncated: list[str] = field(default_factory=list)  # which messages were cut
    evidence: list[Evidence] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        return {"prompt_tokens": self.tokens, "dropped_messages": self.dropped,
                "truncated": self.truncated, "evidence": [e.to_dict() for e in self.evidence]}


def build_prompt(
    engine: Engine,
    *,
    system: str | None,
    history: Sequence[Message],
    message: str,
    reserve: int,
    evidence: Sequence[Evidence] = (),
) -> Prompt:
    """The messages to send: ``system`` (+ ``evidence``) + newest ``history`` + ``message``.

    ``reserve`` is the room kept for the answer (at most half the window).
    """
    budget = engine.context_window - min(reserve, engine.context_window // 2)
    truncated: list[str] = []
    head: list[Message] = []
    if evidence:
        system = "\n\n".join(p for p in (system, render_evidence(evidence)) if p)
    if system:
        text, cut = _fit(engine, system, budget // 4)
        head.append({"role": "system", "content": text})
        if cut:
            truncated.append("system prompt")
    old: list[Message] = []
    for m in history:
        text, cut = _fit(engine, m["content"], budget // 4)
        old.append({"role": m["role"], "content": text})
        if cut:
            truncated.append(f"earlier {m['role']} message")

    exchanges = len(old) // 2
    for drop in range(0, exchanges + DROP_BLOCK, DROP_BLOCK):
        kept = old[min(drop, exchanges) * 2:]
        messages = [*head, *kept, {"role": "user", "content": message}]
        tokens = engine.count_tokens(engine.render(messages))
        if tokens <= budget:
            return Prompt(messages, tokens, len(old) - len(kept), truncated, list(evidence))

    # Even alone with the system prompt, the new message is too long: cut it.
    fixed = engine.count_tokens(engine.render([*head, {"role": "user", "content": ""}]))
    if budget - fixed < 16:
        raise ContextOverflowError(
            f"The system prompt leaves no room in the {engine.context_window}-token context "
            "window: shorten it."
        )
    text, _ = _fit(engine, message, budget - fixed)
    messages = [*head, {"role": "user", "content": text}]
    tokens = engine.count_tokens(engine.render(messages))
    return Prompt(messages, tokens, len(old), [*truncated, "your message"], list(evidence))


def _fit(engine: Engine, text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut in the middle to at most ``limit`` tokens, with a note; and whether cut."""
    total = engine.count_tokens(text)
    if total <= limit:
        return text, False
    # Binary search on kept characters (the note costs tokens too). No token is
    # longer than 16 characters in practice, which bounds the search.
    lo, hi = 0, min(len(text), limit * 16)
    best = _cut(text, 0)
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = _cut(text, mid)
        if engine.count_tokens(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best, True


def _cut(text: str, keep: int) -> str:
    """Keep ``keep`` characters (two thirds from the start, one third from the end)."""
    head = keep * 2 // 3
    tail = keep - head
    removed = len(text) - keep
    note = f"\n[… {removed} characters cut to fit the context window …]\n"
    return text[:head] + note + (text[-tail:] if tail else "")
