"""The loss mask covers exactly what the assistant says, on a real chat template."""

from __future__ import annotations

import pytest

from dialoop.errors import InvalidInputError
from dialoop.train.chat_data import IGNORE, encode_chat

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]


def _target_text(tokenizer, encoded) -> str:  # type: ignore[no-untyped-def]
    pairs = zip(encoded.input_ids, encoded.labels, strict=True)
    return tokenizer.decode([t for t, lab in pairs if lab != IGNORE])


def test_every_assistant_turn_and_nothing_else_is_labelled(hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoded = encode_chat(hf_tokenizer, CHAT)
    assert _target_text(hf_tokenizer, encoded) == "Hello!<|im_end|>\n4<|im_end|>\n"
    # labels are the token ids themselves where kept
    pairs = zip(encoded.input_ids, encoded.labels, strict=True)
    assert all(lab in (IGNORE, tok) for tok, lab in pairs)
    # the whole conversation is there, in the template's own rendering
    assert hf_tokenizer.decode(encoded.input_ids) == hf_tokenizer.apply_chat_template(
        CHAT, tokenize=False
    )


def test_last_only_labels_the_final_answer(hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoded = encode_chat(hf_tokenizer, CHAT, train_on="last")
    assert _target_text(hf_tokenizer, encoded) == "4<|im_end|>\n"


def test_an_answer_of_weight_0_is_context_only(hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoded = encode_chat(hf_tokenizer, CHAT, untrained={2})
    assert _target_text(hf_tokenizer, encoded) == "4<|im_end|>\n"
    assert hf_tokenizer.decode(encoded.input_ids).count("Hello!") == 1  # still in the prompt
    nothing = encode_chat(hf_tokenizer, CHAT, untrained={2, 4})
    assert all(lab == IGNORE for lab in nothing.labels)


def test_conversation_without_an_answer_is_refused(hf_tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match="assistant"):
        encode_chat(hf_tokenizer, CHAT[:2])
