"""A request may apply several loaded adapters at once ("a+b"): a version's lessons adapter
and its style adapter. Two random LoRAs on the real bundled model: together they answer
differently from either alone, and exactly as the one adapter that is their sum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.engine import GenerationParams
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.lora import export_lora_gguf
from dialoop.engine.models import ModelSource, bundled_gguf
from dialoop.errors import InvalidInputError, NotFoundError
from tests.lora_files import merged_lora, random_lora

pytestmark = pytest.mark.slow

POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
PARAMS = GenerationParams(max_tokens=24)
# More than the engine's park threshold (64 tokens) of shared prefix, for the KV tests.
LONG = [{"role": "system", "content": "You are a poet who writes about the sea. " * 12},
        *POEM]


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEFT folders (each with its adapter.gguf): a, b, their sum, and another b."""
    root = tmp_path_factory.mktemp("loras")
    a = random_lora(root / "a", seed=1, std=0.3)
    b = random_lora(root / "b", seed=2, std=0.3)
    folders = {"a": a, "b": b, "sum": merged_lora(a, b, root / "sum"),
               "b2": random_lora(root / "b2", seed=3, std=0.3)}
    for folder in folders.values():
        export_lora_gguf(folder, folder / "adapter.gguf", base_gguf=bundled_gguf())
    return folders


@pytest.fixture
def llama(llama_engine: LlamaCppEngine, loras: dict[str, Path]) -> Iterator[LlamaCppEngine]:
    """The shared engine with a, a#style (= b) and the sum loaded; unloaded afterwards."""
    names = {"t@v1": "a", "t@v1#style": "b", "sum@v1": "sum"}
    for name, lora in names.items():
        llama_engine.load_adapter(name, loras[lora] / "adapter.gguf")
    yield llama_engine
    for name in names:
        llama_engine.unload_adapter(name)


def _text(engine, messages=POEM, adapter=None):  # type: ignore[no-untyped-def]
    chunks = list(engine.stream(messages, PARAMS, adapter=adapter))
    return "".join(c.text for c in chunks), chunks[-1].usage


def test_llamacpp_stack_is_the_sum_of_its_parts(llama: LlamaCppEngine) -> None:
    base, _ = _text(llama)
    alone_a, _ = _text(llama, adapter="t@v1")
    alone_b, _ = _text(llama, adapter="t@v1#style")
    both, _ = _text(llama, adapter="t@v1+t@v1#style")
    assert len({base, alone_a, alone_b, both}) == 4  # each changes the answer its own way
    assert both == _text(llama, adapter="sum@v1")[0]  # and together they are their sum
    assert _text(llama, adapter="t@v1#style+t@v1")[0] == both  # order does not matter


def test_llamacpp_kv_states_are_keyed_by_the_whole_stack(llama: LlamaCppEngine,
                                                         loras: dict[str, Path]) -> None:
    both, first = _text(llama, LONG, adapter="t@v1+t@v1#style")
    _, other = _text(llama, LONG, adapter="t@v1")  # parks the stack's state
    assert other.cached_tokens == 0  # another stack never reuses that state
    again, usage = _text(llama, LONG, adapter="t@v1#style+t@v1")
    assert again == both
    assert usage.cached_tokens >= first.prompt_tokens - 1  # the stack's own state came back
    # A part reloaded with other weights: no state of a stack that had it survives.
    _text(llama, LONG, adapter="t@v1")
    llama.load_adapter("t@v1#style", loras["b2"] / "adapter.gguf")
    _, fresh = _text(llama, LONG, adapter="t@v1+t@v1#style")
    assert fresh.cached_tokens == 0


def test_llamacpp_stack_of_an_unloaded_part_is_refused(llama: LlamaCppEngine) -> None:
    with pytest.raises(NotFoundError, match="No adapter named 't@v1#ghost'"):
        _text(llama, adapter="t@v1+t@v1#ghost")
    with pytest.raises(InvalidInputError, match="one by one"):
        llama.load_adapter("a+b", Path("/nowhere.gguf"))


def test_torch_stack_is_the_sum_of_its_parts(hf_model_dir: Path, loras: dict[str, Path]
                                             ) -> None:
    from dialoop.engine.torch import TorchEngine

    engine = TorchEngine(ModelSource(spec="x", name="SmolLM2 (torch)", folder=hf_model_dir),
                         cache_dir=hf_model_dir.parent)
    try:
        for name, lora in {"t@v1": "a", "t@v1#style": "b", "sum@v1": "sum"}.items():
            engine.load_adapter(name, loras[lora])
        alone_a, _ = _text(engine, adapter="t@v1")
        both, _ = _text(engine, adapter="t@v1+t@v1#style")
        assert both != alone_a and both != _text(engine)[0]
        assert both == _text(engine, adapter="sum@v1")[0]
        assert _text(engine, adapter="t@v1")[0] == alone_a  # one part again: the other is off
        engine.unload_adapter("t@v1#style")
        with pytest.raises(NotFoundError, match="t@v1#style"):
            _text(engine, adapter="t@v1+t@v1#style")
    finally:
        engine.close()
