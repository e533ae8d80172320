"""The weight format served is picked per host by measurement: the quality gate rejects a
format that answers differently, the fastest passing one wins, the pick is cached until
the source file changes, a named format serves the derived file, and LoRA adapters work
on it as on the original."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.config import load_settings
from dialoop.engine import GenerationParams, open_engine
from dialoop.engine.formats import (
    Budget,
    Figures,
    choose,
    choose_batched,
    derive,
    load_record,
    pick,
    served_file,
)
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.lora import export_lora_gguf
from dialoop.engine.models import bundled_gguf
from tests.lora_files import random_lora

TINY = Budget(runs=1, decode_tokens=8, prefill_tokens=64, ppl_tokens=256, prompts=1)


def _figures(fmt: str, *, decode: float, prefill: float, top1: float = 0.97,
             ppl_ratio: float = 1.0) -> Figures:
    return Figures(format=fmt, size=1, decode=decode, prefill=prefill, top1=top1,
                   ppl=20 * ppl_ratio, ppl_ratio=ppl_ratio, greedy=0.5)


def test_the_fastest_format_that_passes_the_gate_is_chosen() -> None:
    figures = [
        _figures("original", decode=100, prefill=300, top1=1.0),
        _figures("Q4_0", decode=160, prefill=900, top1=0.66, ppl_ratio=1.17),  # fastest, worse
        _figures("Q8_0", decode=110, prefill=600),
        _figures("F16", decode=80, prefill=650),  # passes, but slower per turn than Q8_0
        _figures("Q5_0", decode=150, prefill=800, ppl_ratio=1.05),  # top-1 fine, ppl not
    ]
    choice, why = choose(figures)
    assert choice == "Q8_0"
    assert "Q4_0 rejected: top-1 agreement 0.660 < 0.95" in why
    assert "Q5_0 rejected: perplexity x1.050 > 1.02" in why


def test_a_batching_server_gets_the_passing_format_that_decodes_most_at_once() -> None:
    figures = [
        replace(_figures("original", decode=100, prefill=300, top1=1.0), batch_decode=150),
        replace(_figures("Q4_0", decode=160, prefill=900, top1=0.66), batch_decode=500),
        replace(_figures("Q8_0", decode=110, prefill=600), batch_decode=300),
        replace(_figures("F16", decode=80, prefill=650), batch_decode=400),
    ]
    assert choose(figures)[0] == "Q8_0"  # one answer at a time
    choice, why = choose_batched(figures)  # Q4_0 is fastest at once but fails the gate
    assert choice == "F16" and why.startswith("400 tok/s for 16 answers at once")
    assert "Q8_0 300" in why and "Q4_0" not in why
    assert choose_batched([_figures("original", decode=1, prefill=1)]) == ("", "")


def test_the_original_is_kept_when_no_faster_format_passes() -> None:
    figures = [_figures("original", decode=100, prefill=300, top1=1.0),
               _figures("Q4_0", decode=160, prefill=900, top1=0.70)]
    assert choose(figures)[0] == "original"


@pytest.mark.slow
def test_a_worse_derived_format_is_rejected_and_the_pick_is_cached_until_the_source_changes(
        tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    shutil.copyfile(bundled_gguf(), source)
    home = tmp_path / "home"
    record = pick(source, home, budget=TINY, candidates=("Q4_0",), threads=1)
    q4_0 = record.figures("Q4_0")
    # Q4_0 re-rounds Q4_1's 4-bit weights: measured top-1 agreement ~0.7
    assert q4_0.verdict() is not None and q4_0.verdict().startswith("top-1 agreement")
    assert record.choice == "original" and record.n_ubatch in (128, 256, 512)

    cached = load_record(source, home)
    assert cached is not None and cached.measured == record.measured
    assert served_file(source, home, "auto").path == source
    derived = derive(source, "Q4_0", home)
    assert derived.is_file()

    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file changed
    assert load_record(source, home) is None
    assert not derived.exists()  # derived from the old file: gone
    served = served_file(source, home, "auto")
    assert served.path == source and "dialoop models --bench" in served.reason


@pytest.mark.slow
def test_a_named_format_serves_the_derived_file_and_the_cli_says_so(
        dialoop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_WEIGHT_FORMAT", "Q8_0")
    engine = open_engine(load_settings())
    try:
        assert isinstance(engine, LlamaCppEngine)
        assert engine.path.name.endswith(".Q8_0.gguf") and dialoop_home in engine.path.parents
        chunks = list(engine.stream([{"role": "user", "content": "Say hello."}],
                                    GenerationParams(max_tokens=8)))
        assert "".join(c.text for c in chunks).strip()
    finally:
        engine.close()
    out = CliRunner().invoke(cli, ["models"], catch_exceptions=False).output
    assert "serving     Q8_0" in out and "weight_format = Q8_0" in out


@pytest.mark.slow
def test_the_cli_prints_the_cached_pick() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["models"], catch_exceptions=False).output
    assert "serving     original" in out and "dialoop models --bench" in out
    settings = load_settings()
    record = pick(bundled_gguf(), settings.home, budget=TINY, candidates=("Q8_0",), threads=1)
    out = runner.invoke(cli, ["models"], catch_exceptions=False).output
    assert f"serving     {record.choice}" in out
    assert f"picked {record.measured}: {record.reason}" in out
    assert f"n_ubatch {record.n_ubatch}" in out and "top-1 agreement" in out
    assert record.batch_choice in ("original", "Q8_0")
    assert all(f.batch_decode > 0 for f in record.formats)
    assert f"batched     {record.batch_choice} when serving with batch_slots" in out
    batched = served_file(bundled_gguf(), settings.home, "auto", batched=True)
    assert batched.format == record.batch_choice and "batched decoding" in batched.reason

    # a pick cached before batched picks existed still loads; batched serving takes its choice
    saved = next((settings.home / "cache" / "formats").glob("*/pick.json"))
    data = json.loads(saved.read_text())
    for name in ("batch_choice", "batch_reason"):
        del data[name]
    for figures in data["formats"]:
        del figures["batch_decode"]
    saved.write_text(json.dumps(data))
    served = served_file(bundled_gguf(), settings.home, "auto", batched=True)
    assert served.format == record.choice and served.reason.startswith("picked ")


def _logits(path: Path, ids: list[int], lora: Path | None = None) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, verbose=False,
                          lora_path=str(lora) if lora else None)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)])
    llm.close()
    return out


@pytest.mark.slow
def test_a_lora_adapter_changes_the_derived_format_as_it_changes_the_original(
        tmp_path: Path, dialoop_home: Path) -> None:
    q8_0 = derive(bundled_gguf(), "Q8_0", dialoop_home)
    lora = random_lora(tmp_path / "peft", seed=1, std=0.3)
    adapter = export_lora_gguf(lora, tmp_path / "adapter.gguf", base_gguf=bundled_gguf())

    engine = LlamaCppEngine(q8_0, context_window=512)
    try:
        ids = engine._llm.tokenize(b"The sea is calm today and the boats are", add_bos=False)
        poem = [{"role": "user", "content": "Write a short poem about the sea."}]
        params = GenerationParams(max_tokens=24)
        base = "".join(c.text for c in engine.stream(poem, params))
        engine.load_adapter("t@v1", adapter)
        adapted = "".join(c.text for c in engine.stream(poem, params, adapter="t@v1"))
        assert adapted != base  # the adapter is applied on the Q8_0 file
    finally:
        engine.close()

    change_q8 = _logits(q8_0, ids, adapter) - _logits(q8_0, ids)
    change_q4 = _logits(bundled_gguf(), ids, adapter) - _logits(bundled_gguf(), ids)
    assert np.linalg.norm(change_q8) > 0.05 * np.linalg.norm(_logits(q8_0, ids))
    # The same change (measured: correlation 0.94; the formats' own logits differ a little,
    # top-1 agreement ~0.96, and the adapter's change rides on them)
    assert np.corrcoef(change_q8.ravel(), change_q4.ravel())[0, 1] > 0.9
