"""Fine-tuning a tiny random Llama: it learns, only LoRA weights move, a stopped run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dialoop.config import load_settings
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import open_database
from dialoop.store.adapters import AdapterStore
from dialoop.train.sft import SFTConfig, StepInfo, train_sft

pytestmark = pytest.mark.slow  # each trains for a few seconds


def _config(tiny_model_dir: Path, data: Path, **overrides) -> SFTConfig:  # type: ignore[no-untyped-def]
    base = dict(
        name="tiny", train_file=data, validation_file=data, model=str(tiny_model_dir),
        grad_accum=1, pack_length=128, learning_rate=1e-2, lora_r=16, lora_alpha=32,
        lora_dropout=0.0, eval_every=10, save_every=10, max_steps=40, precision="fp32",
        threads=1,  # on a busy 2-core machine one thread is several times faster than two
    )
    return SFTConfig(**{**base, **overrides})


def test_a_tiny_model_overfits_a_handful_of_dialogues(
    tiny_model_dir: Path, dialogue_file: Path
) -> None:
    result = train_sft(_config(tiny_model_dir, dialogue_file, method="full", max_steps=80,
                               eval_every=40, save_every=40), load_settings())
    first, last = result.report["evals"][0], result.report["evals"][-1]
    assert first["loss"] > 10  # uniform over a 49k vocabulary: ln(49152) = 10.8
    assert last["loss"] < 0.5
    assert last["token_accuracy"] > 0.95
    assert (result.output / "config.json").is_file()  # a whole model, not an adapter
    assert result.adapter is None


def test_lora_training_registers_a_serving_adapter_and_writes_a_report(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    result = train_sft(_config(tiny_model_dir, dialogue_file), load_settings())
    report = json.loads((result.run_dir / "report.json").read_text())
    first, last = report["evals"][0], report["evals"][-1]
    # LoRA on frozen random embeddings moves the loss little, but the answers a lot
    assert last["loss"] < first["loss"] - 0.5
    assert last["token_accuracy"] > 0.6
    assert report["adapter"] == "tiny@v1"
    for name in ("report.md", "loss_curve.png"):
        assert (result.run_dir / name).stat().st_size > 0
    assert list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    db = open_database(load_settings().resolved_database_url)
    try:
        serving = AdapterStore(db, dialoop_home).active("tiny")
    finally:
        db.close()
    assert serving is not None and serving.version == 1 and serving.source == "sft"
    assert (dialoop_home / serving.path / "adapter_model.safetensors").is_file()


def test_weights_and_biases_logs_offline_in_the_run_folder(
    tiny_model_dir: Path, dialogue_file: Path
) -> None:
    # wandb is a dev dependency, so this runs; offline: the run's records stay in the
    # run folder (``wandb sync`` would upload them), nothing goes over the network
    result = train_sft(_config(tiny_model_dir, dialogue_file, max_steps=2, eval_every=2,
                               save_every=2), load_settings())
    (record,) = (result.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    data = record.read_bytes()
    for key in (b"train/loss", b"validation/loss", b"lora_r"):  # scalars and the config
        assert key in data


def test_only_lora_parameters_change(tiny_model_dir: Path, dialogue_file: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dialoop.train.data import load_dialogues
    from dialoop.train.packing import encode_dialogues, pack
    from dialoop.train.sft import _make_trainable, _train

    config = _config(tiny_model_dir, dialogue_file, max_steps=3)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = pack(encode_dialogues(tokenizer, load_dialogues(dialogue_file), max_length=128), 128, 0)
    model = _make_trainable(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    run_dir = load_settings().home / "run"
    run_dir.mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(model, rows, [], config, run_dir, progress=False, on_step=None)
    finally:
        torch.set_num_threads(threads)
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    lora = {n for n in before if "lora_" in n}
    assert changed == lora  # every LoRA matrix moved; nothing else did
    assert all(not after[n].requires_grad for n in before if n not in lora)


def test_an_interrupted_run_resumes_from_its_checkpoint_as_if_never_stopped(
    tiny_model_dir: Path, dialogue_file: Path
) -> None:
    settings = load_settings()
    kw = dict(max_steps=12, save_every=4, eval_every=4, lora_dropout=0.1)  # dropout: RNG matters
    straight = train_sft(_config(tiny_model_dir, dialogue_file, name="straight", **kw), settings)

    def stop_at_6(info: StepInfo) -> None:
        if info.step == 6:
            raise KeyboardInterrupt

    config = _config(tiny_model_dir, dialogue_file, name="stopped", **kw)
    with pytest.raises(KeyboardInterrupt):
        train_sft(config, settings, on_step=stop_at_6)
    run_dir = next((settings.home / "runs" / "stopped").iterdir())
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step-000004", "step-000006"]
    assert not (run_dir / "report.json").exists()

    resumed = train_sft(_config(tiny_model_dir, dialogue_file, name="stopped", resume=True, **kw),
                        settings)
    assert resumed.run_dir == run_dir
    assert resumed.report["resumed_from"] == [6]
    assert resumed.report["steps"] == 12
    # the same losses and learning rates step by step: same data order, optimizer and schedule
    for a, b in zip(straight.report["history"], resumed.report["history"], strict=True):
        assert a["step"] == b["step"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        assert a["learning_rate"] == pytest.approx(b["learning_rate"])
    from safetensors.torch import load_file

    w1 = load_file(str(straight.output / "adapter_model.safetensors"))
    w2 = load_file(str(resumed.output / "adapter_model.safetensors"))
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)


def test_resume_without_an_interrupted_run_is_refused(
    tiny_model_dir: Path, dialogue_file: Path
) -> None:
    with pytest.raises(NotFoundError, match="No interrupted run"):
        train_sft(_config(tiny_model_dir, dialogue_file, resume=True), load_settings())


def test_resume_with_other_settings_is_refused(tiny_model_dir: Path, dialogue_file: Path) -> None:
    settings = load_settings()

    def stop(info: StepInfo) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sft(_config(tiny_model_dir, dialogue_file), settings, on_step=stop)
    with pytest.raises(InvalidInputError, match="learning_rate"):
        train_sft(_config(tiny_model_dir, dialogue_file, resume=True, learning_rate=1e-3),
                  settings)


def test_validation_loss_that_stops_improving_stops_the_run(
    tiny_model_dir: Path, dialogue_file: Path
) -> None:
    result = train_sft(
        _config(tiny_model_dir, dialogue_file, learning_rate=5.0, max_steps=40, eval_every=2,
                patience=2, max_grad_norm=100.0),
        load_settings(),
    )
    report = result.report
    assert report["stopped_early"]
    assert report["steps"] < 40
    best = min(report["evals"], key=lambda e: e["loss"])
    assert report["kept_step"] == best["step"]


def test_bad_options_fail_before_any_work(tiny_model_dir: Path, dialogue_file: Path) -> None:
    with pytest.raises(InvalidInputError, match="lora_r"):
        _config(tiny_model_dir, dialogue_file, lora_r=0)
    with pytest.raises(InvalidInputError, match="no modules named attn"):
        train_sft(_config(tiny_model_dir, dialogue_file, target_modules=("attn",)),
                  load_settings())
    assert not (load_settings().home / "runs").exists()
