"""Shared fixtures: every test gets its own DIALOOP_HOME; the real model loads once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import Settings, load_settings
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf

pytest_plugins = ["tests.strict_skips"]


@pytest.fixture(autouse=True)
def dialoop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty DIALOOP_HOME; no DIALOOP_* setting leaks in; the hub is offline."""
    for var in list(os.environ):
        if var.startswith("DIALOOP_"):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    monkeypatch.setenv("DIALOOP_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def llama_engine() -> Iterator[LlamaCppEngine]:
    """The real bundled model on the default engine, shared by the whole test session."""
    engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME, context_window=4096)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on loopback for this test session."""
    from tests.postgres import find_bin, postgres_server

    if find_bin() is None:
        pytest.skip("PostgreSQL is not installed (Debian package: postgresql)")
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def hf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model dequantized into an HF folder (once per test session, ~20 s)."""
    from dialoop.engine.torch import dequantized_folder

    return dequantized_folder(bundled_gguf(), tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def hf_tokenizer(hf_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(hf_model_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(hf_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A 2-layer Llama (hidden 64) with random weights and SmolLM2's tokenizer and template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(hf_tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=hf_tokenizer.bos_token_id, eos_token_id=hf_tokenizer.eos_token_id,
        pad_token_id=hf_tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    hf_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model(hf_tokenizer):  # type: ignore[no-untyped-def]
    """A randomly initialised 3-block Llama with the bundled model's tokenizer: for training
    code whose behaviour does not depend on what the model says."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(hf_tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def settings(dialoop_home: Path) -> Settings:
    return load_settings()


@pytest.fixture
def assistant(settings: Settings, llama_engine: LlamaCppEngine) -> Iterator[Assistant]:
    """An assistant on the real model and a real SQLite file in the test's home."""
    with open_assistant(settings, engine=llama_engine) as bot:
        yield bot
