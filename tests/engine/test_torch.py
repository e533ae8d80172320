"""The transformers twin: same model, same answers, weights cached after the first load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dialoop.engine import GenerationParams
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import ModelSource, bundled_gguf, resolve_model
from dialoop.engine.torch import TorchEngine, dequantized_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_engine(hf_model_dir: Path) -> TorchEngine:
    return TorchEngine(ModelSource(spec="x", name="SmolLM2 (torch)", folder=hf_model_dir),
                       cache_dir=hf_model_dir.parent)


def test_dequantized_weights_are_cached(hf_model_dir: Path) -> None:
    before = (hf_model_dir / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    again = dequantized_folder(bundled_gguf(), hf_model_dir.parent)
    assert again == hf_model_dir
    assert (hf_model_dir / "model.safetensors").stat().st_mtime_ns == before  # not rewritten
    assert time.perf_counter() - started < 1.0  # no dequantization the second time


def test_gguf_source_loads_through_the_cache(hf_model_dir: Path, tmp_path: Path) -> None:
    source = resolve_model("default", home=tmp_path)
    engine = TorchEngine(source, cache_dir=hf_model_dir.parent)  # the cache made by the fixture
    assert engine.context_window == 8192 and engine.kind == "torch"


def test_same_greedy_answer_as_llama_cpp(torch_engine: TorchEngine,
                                         llama_engine: LlamaCppEngine) -> None:
    question = [{"role": "user", "content": "What is the capital of Japan?"}]
    params = GenerationParams(max_tokens=30)
    ours = "".join(c.text for c in torch_engine.stream(question, params))
    theirs = "".join(c.text for c in llama_engine.stream(question, params))
    assert ours and ours == theirs  # the twin says exactly what llama.cpp says
    assert torch_engine.render(question) == llama_engine.render(question)


def test_next_turn_reuses_the_kv_cache(torch_engine: TorchEngine) -> None:
    turn1 = [{"role": "user", "content": "Name three colors."}]
    params = GenerationParams(max_tokens=20)
    reply = "".join(c.text for c in torch_engine.stream(turn1, params))
    turn2 = [*turn1, {"role": "assistant", "content": reply},
             {"role": "user", "content": "Which one is the warmest?"}]
    last = list(torch_engine.stream(turn2, params))[-1]
    assert last.usage is not None
    assert last.usage.cached_tokens >= torch_engine.count_tokens(torch_engine.render(turn1)) - 4
