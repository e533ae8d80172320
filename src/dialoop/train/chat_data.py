"""Conversations → token ids and labels, with loss only on what the assistant says.

Works with any chat template, by rendering prefixes: for the i-th message,

    before = render(messages[:i], add_generation_prompt=True)   # …"<|im_start|>assistant\\n"
    after  = render(messages[:i + 1])                           # …"answer<|im_end|>\\n"

the characters ``after[len(before):]`` are the assistant's own text and the
template's end-of-turn marker: exactly what the model must learn to produce. Tokens
whose characters fall inside those spans get their id as label; all others get
``IGNORE`` (-100, which PyTorch's cross-entropy skips).

(HF's ``return_assistant_tokens_mask`` needs ``{% generation %}`` markers in the
template, which most templates, SmolLM2's included, do not have.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dialoop.engine import Message
from dialoop.engine.control_tokens import ControlTokens
from dialoop.errors import InvalidInputError

__all__ = ["IGNORE", "Encoded", "encode_chat"]

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # same length; IGNORE where no loss is taken

    @property
    def n_target(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def encode_chat(
    tokenizer: Any,
    messages: Sequence[Message],
    *,
    train_on: Literal["assistant", "last"] = "assistant",
    max_length: int | None = None,
    untrained: Collection[int] = (),
) -> Encoded:
    """Tokenize ``messages`` with the tokenizer's chat template; label assistant turns.

    ``train_on="last"`` labels only the final assistant message (a correction);
    ``"assistant"`` labels every assistant message (multi-turn SFT). Assistant messages
    whose index is in ``untrained`` (weight 0) are context only: never labelled.
    """
    # Escaped as the engines escape what they render: a control token spelled in a stored
    # message stays text in training data too, not a turn marker the model learns from.
    msgs = ControlTokens.of_tokenizer(tokenizer).escape_messages(messages)
    if not any(m["role"] == "assistant" for m in msgs):
        raise InvalidInputError("A training conversation needs at least one assistant message.")
    text = _render(tokenizer, msgs, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or i in untrained:
            continue
        before = _render(tokenizer, msgs[:i], generation_prompt=True)
        after = _render(tokenizer, msgs[: i + 1], generation_prompt=False)
        if not (after.startswith(before) and text.startswith(after)):
            raise InvalidInputError(
                "This chat template does not render conversations prefix by prefix, so the "
                "assistant's tokens cannot be located; use a model with a standard template."
            )
        spans.append((len(before), len(after)))
    if train_on == "last":
        spans = spans[-1:]

    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    labels = [
        tok if any(start >= a and end <= b for a, b in spans) and end > start else IGNORE
        for tok, (start, end) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[:max_length], labels[:max_length]
    return Encoded(ids, labels)


def _render(tokenizer: Any, messages: list[dict], *, generation_prompt: bool) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
