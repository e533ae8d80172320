"""Every method of `train sft --method` on a tiny random Llama: each trains only its own
parameters, AdaLoRA prunes and becomes a plain LoRA, weight decay reaches AdamW, each
result is saved where (and only where) it can serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.config import load_settings
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import open_database
from dialoop.store.adapters import AdapterStore
from dialoop.train.peft_methods import (
    METHODS,
    PROMPT_METHODS,
    adalora_as_lora,
    load_bottleneck,
    method_parameters,
    unpacked_rows,
)
from dialoop.train.sft import SFTConfig, _make_trainable, _train, make_optimizer

pytestmark = pytest.mark.slow  # a few seconds each


def _config(tiny_model_dir: Path, data: Path, **overrides) -> SFTConfig:  # type: ignore[no-untyped-def]
    base = dict(
        name="tiny", train_file=data, validation_file=data, model=str(tiny_model_dir),
        grad_accum=1, pack_length=128, learning_rate=1e-2, lora_r=4, lora_alpha=8,
        lora_dropout=0.0, virtual_tokens=4, bottleneck=8, max_steps=3, eval_every=3,
        save_every=3, precision="fp32", threads=1,
    )
    return SFTConfig(**{**base, **overrides})


def _train_in_memory(tiny_model_dir: Path, config: SFTConfig, run: str):  # type: ignore[no-untyped-def]
    """The model made trainable by ``config.method`` and the function that trains it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dialoop.train.data import load_dialogues
    from dialoop.train.packing import encode_dialogues, pack

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    encoded = encode_dialogues(tokenizer, load_dialogues(config.train_file), max_length=128)
    rows = (unpacked_rows(encoded, config.method, config.virtual_tokens)
            if config.method in PROMPT_METHODS else pack(encoded, 128, 0))
    torch.manual_seed(0)
    model = _make_trainable(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config,
                            config.max_steps or 1)
    run_dir = load_settings().home / run
    run_dir.mkdir(parents=True)

    def train() -> dict:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _train(model, rows, rows, config, run_dir, progress=False, on_step=None)
        finally:
            torch.set_num_threads(threads)

    return model, rows, train


@pytest.mark.parametrize("method", METHODS)
def test_each_method_changes_only_its_own_parameters(
    method: str, tiny_model_dir: Path, dialogue_file: Path
) -> None:
    config = _config(tiny_model_dir, dialogue_file, method=method)
    model, _, train = _train_in_memory(tiny_model_dir, config, "run")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    own = {n for n in before if method_parameters(n, method)}
    assert own and (method == "full" or len(own) < len(before))
    train()
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == own  # every parameter of the method moved; the base is bit-identical
    assert all(not after[n].requires_grad for n in before if n not in own)


def test_adalora_prunes_ranks_and_its_lora_form_answers_the_same(
    tiny_model_dir: Path, dialogue_file: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = _config(tiny_model_dir, dialogue_file, method="adalora", max_steps=10,
                     eval_every=5, save_every=5)
    model, rows, train = _train_in_memory(tiny_model_dir, config, "run")
    train()
    singular = torch.cat([m.lora_E["default"].detach().flatten() for m in model.modules()
                          if hasattr(m, "lora_E") and "default" in m.lora_E])
    assert 0 < int((singular == 0).sum()) < singular.numel()  # some ranks pruned, not all

    lora = adalora_as_lora(model, tmp_path / "lora")
    assert json.loads((lora / "adapter_config.json").read_text())["peft_type"] == "LORA"
    from safetensors.torch import load_file

    from dialoop.engine.lora import _PEFT_NAME  # what the GGUF export accepts

    assert all(_PEFT_NAME.match(k) for k in load_file(str(lora / "adapter_model.safetensors")))
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(lora)).eval()
    model.eval()
    row = rows[0]
    with torch.no_grad():
        want = model(input_ids=row.input_ids, position_ids=row.position_ids).logits
        got = plain(input_ids=row.input_ids, position_ids=row.position_ids).logits
        with plain.disable_adapter():
            base = plain(input_ids=row.input_ids, position_ids=row.position_ids).logits
    assert (base - want).abs().max() > 1e-3  # the adapter does change the answers
    assert torch.allclose(got, want, atol=1e-5)


def test_weight_decay_reaches_the_optimizer(tiny_model_dir: Path, dialogue_file: Path) -> None:
    config = _config(tiny_model_dir, dialogue_file, weight_decay=0.25)
    params = [torch.nn.Parameter(torch.ones(2))]
    assert [g["weight_decay"] for g in make_optimizer(params, config).param_groups] == [0.25]

    # and it acts: the same two steps with decay leave the LoRA A matrices smaller
    norms = {}
    for decay in (0.0, 20.0):  # AdamW shrinks by (1 - lr * decay) = 0.8 per step
        cfg = _config(tiny_model_dir, dialogue_file, weight_decay=decay, max_steps=2)
        model, _, train = _train_in_memory(tiny_model_dir, cfg, f"run-{decay}")
        train()
        norms[decay] = sum(float(p.detach().norm()) for n, p in model.named_parameters()
                           if "lora_A" in n)
    assert norms[20.0] < 0.9 * norms[0.0]


def test_a_bottleneck_adapter_registers_and_the_torch_engine_serves_it(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    from transformers import AutoModelForCausalLM

    from dialoop.engine import GenerationParams
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import TorchEngine

    folder = _train_torch_only(tiny_model_dir, dialogue_file, "--method", "adapter",
                               "--bottleneck", "8", "--max-steps", "3", "--lr", "0.05")
    (run_dir,) = (dialoop_home / "runs" / "tiny").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    model = load_bottleneck(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), folder)
    assert sum(p.numel() for n, p in model.named_parameters() if ".bottleneck." in n) == \
        report["trainable_parameters"]
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, fresh(input_ids=ids).logits)

    # the engine answers with the adapter as the adapted model does, and without it as
    # the base model does, request by request
    engine = TorchEngine(resolve_model(str(tiny_model_dir), home=dialoop_home),
                         cache_dir=dialoop_home / "cache")
    engine.load_adapter("tiny@v1", folder)
    messages = [{"role": "user", "content": "hi"}]
    prompt = engine._prompt_tokens(messages)

    def first_logprob(m: object) -> float:  # of the model's most likely first token
        with torch.no_grad():
            return float(torch.log_softmax(m(input_ids=torch.tensor([prompt])).logits[0, -1],
                                           dim=-1).max())

    def served(name: str | None) -> float:
        chunks = engine.stream(messages, GenerationParams(temperature=0.0, max_tokens=1,
                                                          logprobs=0), adapter=name)
        return next(t.logprob for c in chunks for t in c.logprobs)

    adapted, base = first_logprob(model), first_logprob(fresh)
    assert abs(adapted - base) > 1e-3  # the two differ, so the checks below can fail
    for name, want in (("tiny@v1", adapted), (None, base), ("tiny@v1", adapted)):
        assert served(name) == pytest.approx(want, abs=1e-4), name
    assert engine.adapters == ["tiny@v1"]
    engine.unload_adapter("tiny@v1")
    assert engine.adapters == [] and served(None) == pytest.approx(base, abs=1e-4)


def _sft(*args: str) -> object:
    return CliRunner().invoke(cli, ["train", "sft", *args], catch_exceptions=False)


def _tiny_args(tiny_model_dir: Path, data: Path, *more: str) -> list[str]:
    return [str(data), "--name", "tiny", "--model", str(tiny_model_dir), "--validation",
            str(data), "--grad-accum", "1", "--lr", "1e-2", "--threads", "1",
            "--precision", "fp32", "--pack-length", "128", *more]


def _train_torch_only(tiny_model_dir: Path, dialogue_file: Path, *options: str) -> Path:
    """Train through the CLI a method that serves on the torch engine only; check that it
    says so and that the store refuses it to llama.cpp; return its registered folder."""
    result = _sft(*_tiny_args(tiny_model_dir, dialogue_file, *options))
    assert result.exit_code == 0, result.output
    assert "serves on the torch engine only" in result.output
    assert "dialoop chat --engine torch --adapter tiny" in result.output
    settings = load_settings()
    db = open_database(settings.resolved_database_url)
    try:
        store = AdapterStore(db, settings.home)
        with pytest.raises(NotFoundError, match="no GGUF form; use --engine torch"):
            store.locate("tiny", "llamacpp")
        return store.locate("tiny", "torch")
    finally:
        db.close()


def test_ia3_registers_for_the_torch_engine_and_llamacpp_is_refused(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    from dialoop.engine import GenerationParams
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import TorchEngine

    folder = _train_torch_only(tiny_model_dir, dialogue_file, "--method", "ia3",
                               "--max-steps", "2")
    engine = TorchEngine(resolve_model(str(tiny_model_dir), home=dialoop_home),
                         cache_dir=dialoop_home / "cache")
    engine.load_adapter("tiny@v1", folder)
    answer = list(engine.stream([{"role": "user", "content": "hi"}],
                                GenerationParams(temperature=0.0, max_tokens=3),
                                adapter="tiny@v1"))
    assert answer[-1].usage is not None and answer[-1].usage.completion_tokens >= 1


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_prompt_methods_register_and_the_torch_engine_answers_with_their_virtual_tokens(
    method: str, tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from dialoop.engine import GenerationParams
    from dialoop.engine.models import resolve_model
    from dialoop.engine.torch import TorchEngine, prefill_virtual_tokens

    folder = _train_torch_only(tiny_model_dir, dialogue_file, "--method", method,
                               "--virtual-tokens", "4", "--max-steps", "2", "--lr", "0.3")
    (run_dir,) = (dialoop_home / "runs" / "tiny").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["method"] == method and report["adapter"] == "tiny@v1"
    assert f"({method} tuning, 4 virtual tokens)" in (run_dir / "report.md").read_text()

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                      str(folder)).eval()
    # the cache made once with the virtual tokens, then one token at a time, gives what the
    # model computes on the whole sequence, and not what the base model does
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    with torch.no_grad():
        want = model(input_ids=ids).logits[0, -1]
        with model.disable_adapter():
            base = model(input_ids=ids).logits[0, -1]
        _, cache = prefill_virtual_tokens(model, ids[:, :-1])
        got = model.get_base_model()(input_ids=ids[:, -1:], past_key_values=cache,
                                     use_cache=True).logits[0, -1]
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(base, want, atol=1e-3)

    # the engine, with a LoRA adapter loaded beside it, answers as the PEFT model does when
    # it recomputes the whole sequence at every step
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                     init_lora_weights=False))  # not zero: it changes answers
    lora.save_pretrained(str(tmp_path / "lora"))
    engine = TorchEngine(resolve_model(str(tiny_model_dir), home=dialoop_home),
                         cache_dir=dialoop_home / "cache")
    engine.load_adapter("lora", tmp_path / "lora")
    engine.load_adapter("tiny@v1", folder)
    messages = [{"role": "user", "content": "hi"}]
    prompt = engine._prompt_tokens(messages)
    expected: list[int] = []
    with torch.no_grad():
        for _ in range(4):
            token = int(model(input_ids=torch.tensor([prompt + expected])).logits[0, -1].argmax())
            if token in engine._eos:
                break
            expected.append(token)
    params = GenerationParams(temperature=0.0, max_tokens=4)
    for _ in range(2):  # the second time, nothing of the first request's cache is reused
        chunks = list(engine.stream(messages, params, adapter="tiny@v1"))
        assert "".join(c.text for c in chunks) == engine.tokenizer.decode(
            expected, skip_special_tokens=True)
        assert chunks[-1].usage is not None and chunks[-1].usage.cached_tokens == 0
    assert engine.adapters == ["lora", "tiny@v1"]
    with pytest.raises(InvalidInputError, match="serve alone"):
        engine.stream(messages, params, adapter="tiny@v1+lora")
    engine.unload_adapter("tiny@v1")
    assert engine.adapters == ["lora"]


def test_full_flag_is_method_full(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    result = _sft(*_tiny_args(tiny_model_dir, dialogue_file, "--full", "--max-steps", "1"))
    assert result.exit_code == 0, result.output
    assert "full: " in result.output and "dialoop chat --engine torch --model" in result.output


def test_search_tries_parameters_and_trains_with_the_best(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    result = _sft(*_tiny_args(tiny_model_dir, dialogue_file, "--rank", "4", "--alpha", "8",
                              "--max-steps", "4", "--eval-every", "2", "--search", "2"))
    assert result.exit_code == 0, result.output
    assert "Search: 2 trials of 1 steps each" in result.output
    assert "| trial | learning_rate | weight_decay | lora_r | lora_alpha | val loss | s |" \
        in result.output
    (run_dir,) = [d for d in (dialoop_home / "runs" / "tiny").iterdir()
                  if not d.name.startswith("search-")]
    searched = json.loads((run_dir / "search.json").read_text())
    assert len(searched["trials"]) == 2
    best = min(searched["trials"], key=lambda t: t["val_loss"])["params"]
    assert searched["best"] == best
    assert set(best) == {"learning_rate", "weight_decay", "lora_r", "lora_alpha"}
    assert best["lora_alpha"] == 2 * best["lora_r"]  # the configured alpha / rank is kept
    config = json.loads((run_dir / "report.json").read_text())["config"]
    assert {k: config[k] for k in best} == best  # the final run used the best parameters
    assert config["max_steps"] == 4
    assert "- search: 2 trials of 1 steps (search.json)" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--search", "2"], "--search chooses by the validation loss"),
    (["--method", "dora"], "Invalid value for '--method'"),
    (["--full", "--method", "ia3"], "--full and --method ia3 contradict"),
    (["--method", "prompt", "--target-modules", "q_proj"], "target modules apply to"),
    (["--method", "prefix", "--virtual-tokens", "0"], "virtual_tokens must be at least 1"),
    (["--search", "0", "--validation", "VALID"], "at least 1"),
])
def test_bad_combinations_exit_2_and_change_nothing(
    args: list[str], message: str, dialogue_file: Path, dialoop_home: Path
) -> None:
    args = [str(dialogue_file) if a == "VALID" else a for a in args]
    result = CliRunner().invoke(cli, ["train", "sft", str(dialogue_file), "--name", "x", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (dialoop_home / "runs").exists() and not (dialoop_home / "adapters").exists()
