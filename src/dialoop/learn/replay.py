"""The replay set: unrelated prompts and the base model's own answers to them.

Trained on beside the lessons, they hold everything else in place (locality); a
held-out part of them is what the gate checks locality on. The base answers are
generated once per base model, greedily, and cached in
``$DIALOOP_HOME/learn/replay-<model>.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from dialoop.engine import Engine, GenerationParams

__all__ = ["REPLAY_PROMPTS", "base_answers", "generate"]

log = logging.getLogger(__name__)

# General questions and small tasks, none about any taught fact. The first ones are
# trained on (``learn_replay`` of them); the rest are held out for the gate.
REPLAY_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "How many days are in a week?",
    "What color is the sky on a clear day?",
    "Who wrote Romeo and Juliet?",
    "What is 2 plus 2?",
    "Name a fruit that is yellow.",
    "What is the boiling point of water in Celsius?",
    "What do bees make?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "Say hello in Spanish.",
    "What is the opposite of hot?",
    "Give me a word that rhymes with cat.",
    "What gas do plants absorb from the air?",
    "Who painted the Mona Lisa?",
    "What is the chemical symbol for gold?",
    "How many continents are there?",
    "What is the freezing point of water in Fahrenheit?",
    "Write one sentence about the ocean.",
    "What is the main language spoken in Brazil?",
    "What animal is known as the king of the jungle?",
    "Translate 'thank you' into French.",
    "What is the square root of 81?",
    "What is the capital of Italy?",
    "Which planet is known as the Red Planet?",
    "How many hours are in a day?",
    "What is the tallest mountain in the world?",
    "Who was the first person to walk on the moon?",
    "Suggest a name for a pet goldfish.",
    "What do you call a baby cat?",
    "What is the currency of Japan?",
    "How many sides does a triangle have?",
    "What is photosynthesis in one sentence?",
    "Name three primary colors.",
    "What is the capital of Germany?",
    "What is the fastest land animal?",
    "How do you say goodbye in German?",
    "What is the smallest prime number?",
    "What instrument has 88 keys?",
    "Write a haiku about autumn.",
    "What is the capital of Spain?",
    "How many minutes are in an hour?",
    "Who discovered penicillin?",
    "What is H2O?",
    "What is the longest river in Africa?",
    "Give me a tip for sleeping better.",
    "What is the plural of mouse?",
    "Which ocean is the largest?",
    "What is 10 times 10?",
    "What shape has four equal sides?",
    "Who developed the theory of relativity?",
    "What is the capital of Canada?",
    "Name a mammal that can fly.",
    "What is the hardest natural substance?",
    "How many strings does a standard guitar have?",
    "What season comes after winter?",
    "What is the capital of Egypt?",
    "Recommend a healthy breakfast.",
    "What is the center of an atom called?",
    "What language is spoken in Mexico?",
)


def generate(engine: Engine, prompt: str, *, max_tokens: int = 64, adapter: str | None = None
             ) -> str:
    """The greedy answer of ``engine`` to one prompt, as the assistant would give it."""
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, repeat_penalty=1.1)
    messages = [{"role": "user", "content": prompt}]
    return "".join(c.text for c in engine.stream(messages, params, adapter=adapter)).strip()


def base_answers(engine: Engine, cache_dir: Path, prompts: tuple[str, ...] = REPLAY_PROMPTS
                 ) -> dict[str, str]:
    """The base model's answers to ``prompts``, from the cache or generated now."""
    key = hashlib.sha1(f"{engine.name}:{getattr(engine, 'path', '')}".encode()).hexdigest()[:12]
    path = cache_dir / f"replay-{key}.json"
    cached: dict[str, str] = {}
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("ignoring an unreadable replay cache %s", path)
    missing = [p for p in prompts if p not in cached]
    for prompt in missing:
        cached[prompt] = generate(engine, prompt)
    if missing:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
    return {p: cached[p] for p in prompts}
