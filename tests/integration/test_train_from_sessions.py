"""From a chat to an adapter that serves: a real session on the bundled model, corrected
and rated, exported as training data, trained on by `dialoop train sft`, asked again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.train.data import load_dialogues
from tests.integration.cli import dialoop, dialoop_json

pytestmark = pytest.mark.slow

SYSTEM = "You are the assistant of Pebble & Pine."
SECRET = "What is the secret word?"
TAUGHT = "The secret word is Zanzibar."


def _chat(llama_engine: LlamaCppEngine) -> dict[str, str]:
    """Three short turns in the session "shop": one corrected, one rated good, one bad."""
    with open_assistant(load_settings(max_tokens=24), engine=llama_engine) as bot:
        learning = bot.parts.learning
        secret = bot.ask(SECRET, session="shop", system=SYSTEM)
        good = bot.ask("What is 2 plus 2?", session="shop")
        bad = bot.ask("Name a colour.", session="shop")
        learning.correct(secret.turn_id, TAUGHT, user="local")
        learning.rate(good.turn_id, +1, user="local")
        learning.rate(bad.turn_id, -1, user="local")
        return {"secret": secret.text, "good": good.text, "bad": bad.text}


def test_a_corrected_chat_trains_an_adapter_that_serves(
    tmp_path: Path, dialoop_home: Path, hf_model_dir: Path, llama_engine: LlamaCppEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said = _chat(llama_engine)
    data = tmp_path / "shop.jsonl"
    dialoop("sessions", "export", "shop", "--format", "openai", "-o", str(data))

    # What it will train on: the corrected answer instead of the model's, the bad one gone.
    (dialogue,) = load_dialogues(data)
    answers = [dialogue.messages[i]["content"] for i in dialogue.assistant_turns]
    assert answers == [TAUGHT, said["good"]]
    assert dialogue.messages[0] == {"role": "system", "content": SYSTEM}
    assert said["secret"] != TAUGHT and "Name a colour." not in data.read_text()

    # The session's dequantized twin, where this home's cache would put it (saves ~20 s).
    cache = dialoop_home / "cache" / "models"
    cache.mkdir(parents=True)
    (cache / hf_model_dir.name).symlink_to(hf_model_dir)
    monkeypatch.setenv("DIALOOP_THREADS", "1")
    trained = dialoop("train", "sft", str(data), "--name", "shop-chat", "--validation",
                      str(data), "--max-steps", "8", "--grad-accum", "1", "--lr", "3e-3",
                      "--eval-every", "4", "--threads", "1", "--json", timeout=900)
    report = json.loads(trained.stdout)
    assert report["adapter"] == "shop-chat@v1" and report["promoted"] is True
    assert report["data"]["train_dialogues"] == 1 and report["data"]["train_file"] == str(data)
    assert report["evals"][-1]["loss"] < report["evals"][0]["loss"]  # it learned the data

    asked = dialoop_json("ask", SECRET, "--adapter", "shop-chat", "--no-memory", "--json",
                         "--max-tokens", "24")
    assert asked["adapter"] == "shop-chat@v1"
    stored = dialoop_json("sessions", "export", asked["session_id"])
    assert stored["turns"][-1]["adapter"] == "shop-chat@v1"  # the turn records the adapter
