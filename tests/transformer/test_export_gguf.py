"""The decoder, written as GGUF, runs in llama.cpp with the same logits, the same greedy
continuations and the same tokenization, and carries the chat template dialoop needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from dialoop.errors import ConfigError
from dialoop.transformer import Decoder, TransformerConfig
from dialoop.transformer.data import bundled_corpus, read_corpus
from dialoop.transformer.export import export_gguf
from dialoop.transformer.tokenizer import CHAT_TEMPLATE, Specials, train_tokenizer

PROMPTS = ["The river rises.", "A small boat", "<|im_start|>user\nHi<|im_end|>"]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return train_tokenizer(read_corpus([bundled_corpus()]), 300)


def _trained_decoder(config: TransformerConfig, rows: torch.Tensor) -> Decoder:
    """A tiny decoder fitted to a few rows, so that its greedy choices are clear-cut."""
    model = Decoder(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        _, loss = model(rows[:, :-1], rows[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _greedy(model: Decoder, ids: list[int], n: int) -> list[int]:
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
    return ids[-n:]


def test_llama_cpp_runs_the_exported_decoder_like_torch(
    tiny: TransformerConfig, tokenizer, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from llama_cpp import Llama

    config = dataclasses.replace(tiny, vocab_size=tokenizer.get_vocab_size())
    text = " ".join(read_corpus([bundled_corpus()])[:3])
    stream = torch.tensor(tokenizer.encode(text).ids[: 8 * 17])
    model = _trained_decoder(config, stream.view(8, 17))  # (8, T + 1) rows
    path = export_gguf(model, tokenizer, tmp_path / "tiny.gguf")

    llm = Llama(model_path=str(path), n_ctx=16, n_threads=1, logits_all=True, verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == CHAT_TEMPLATE
    assert llm.token_eos() == Specials.eos and llm.token_bos() == Specials.bos
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt).ids
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
        llm.reset()
        llm.eval(ids)
        theirs = torch.from_numpy(np.array(llm.scores[: len(ids)]))  # (T, V)
        with torch.no_grad():
            ours = model(torch.tensor([ids]))[0][0]  # (T, V)
        assert ours.abs().max() > 1.0  # a trained model, not near-zero logits
        # llama.cpp keeps keys and values in float16: agreement to a few thousandths
        torch.testing.assert_close(theirs, ours, atol=1e-2, rtol=1e-2)

        n = 16 - len(ids)
        llm.reset()
        generated = []
        for token in llm.generate(ids, temp=0.0, top_k=1):
            generated.append(token)
            if len(generated) == n:
                break
        assert generated == _greedy(model, ids, n), prompt


def test_only_a_rope_decoder_exports_to_gguf(
    tiny: TransformerConfig, tokenizer, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    model = Decoder(dataclasses.replace(tiny, position="sinusoidal"))
    with pytest.raises(ConfigError, match="RoPE"):
        export_gguf(model, tokenizer, tmp_path / "tiny.gguf")
    assert not (tmp_path / "tiny.gguf").exists()


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(
    tiny: TransformerConfig, tokenizer, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    model = Decoder(dataclasses.replace(tiny, vocab_size=tokenizer.get_vocab_size() + 5))
    with pytest.raises(ConfigError, match="the tokenizer the decoder was trained with"):
        export_gguf(model, tokenizer, tmp_path / "tiny.gguf")
