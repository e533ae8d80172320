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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dialoop.engine import Engine, GenerationParams

__all__ = ["REPLAY_PROMPTS", "BaseAnswers", "generate", "locality_prompts"]

log = logging.getLogger(__name__)

# General questions and small tasks, none about any taught fact. The first ones are
# trained on (``learn_replay`` of them); the rest, with :func:`locality_prompts`, are the
# gate's locality probes.
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


_COUNTRIES = ("Portugal", "Norway", "Kenya", "Chile", "Vietnam", "Poland", "Morocco", "Peru",
              "Sweden", "Thailand", "Greece", "Argentina", "Ireland", "Nigeria", "Austria",
              "Cuba", "Finland", "Nepal", "Ghana", "Hungary")
_WORDS = ("happy", "quick", "ancient", "bright", "quiet", "brave", "tiny", "cold", "honest",
          "strange")
_TOPICS = ("volcanoes", "the moon", "bread", "rain", "bicycles", "libraries", "trains",
           "honey", "chess", "the desert")
_THINGS = ("banana", "tomato", "lemon", "carrot", "strawberry", "cucumber", "grape", "pumpkin",
           "blueberry", "lime")
_ANIMALS = ("an elephant", "a penguin", "a dolphin", "a camel", "an owl", "a frog", "a tiger",
            "a rabbit", "a shark", "a horse")


# Template and what fills it, in order: the gate takes the first learn_gate_probes prompts.
_LOCALITY: tuple[tuple[str, Sequence[Any]], ...] = (
    ("What is the capital of {}?", _COUNTRIES),
    ("What language is spoken in {}?", _COUNTRIES),
    ("Give me a word that means the same as {}.", _WORDS),
    ("What is the opposite of {}?", _WORDS),
    ("Write one sentence about {}.", _TOPICS),
    ("Tell me an interesting fact about {}.", _TOPICS),
    ("Explain {} to a child in one sentence.", _TOPICS),
    ("What is {} plus {}?", list(zip(range(3, 23), range(17, 37), strict=True))),
    ("What is {} times {}?", list(zip(range(2, 12), range(3, 13), strict=True))),
    ("How many letters are in the word {}?", _WORDS),
    ("What color is a ripe {}?", _THINGS),
    ("Is a {} a fruit or a vegetable?", _THINGS),
    ("Suggest a simple recipe with {}.", _THINGS),
    ("Where does {} live?", _ANIMALS),
    ("What does {} eat?", _ANIMALS),
    ("How long can {} live?", _ANIMALS),
    ("What is the weather usually like in {} in winter?", _COUNTRIES),
    ("Name a famous dish from {}.", _COUNTRIES),
    ("Write a short poem about {}.", _TOPICS),
)


def locality_prompts() -> list[str]:
    """Hundreds of everyday prompts about nothing anyone teaches: the gate's locality probes
    (with :data:`REPLAY_PROMPTS`). Built from small lists, the same every time."""
    return [template.format(*(x if isinstance(x, tuple) else (x,)))
            for template, fills in _LOCALITY for x in fills]


def generate(engine: Engine, prompt: str, *, max_tokens: int = 64, adapter: str | None = None
             ) -> str:
    """The greedy answer of ``engine`` to one prompt, as the assistant would give it."""
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, repeat_penalty=1.1)
    messages = [{"role": "user", "content": prompt}]
    return "".join(c.text for c in engine.stream(messages, params, adapter=adapter)).strip()


class BaseAnswers:
    """The base model's greedy answers, made on demand and cached per base model in
    ``cache_dir/replay-<model>.json`` (call :meth:`save` to keep the new ones)."""

    def __init__(self, engine: Engine, cache_dir: Path) -> None:
        self.engine = engine
        key = hashlib.sha1(f"{engine.name}:{getattr(engine, 'path', '')}".encode()).hexdigest()
        self.path = cache_dir / f"replay-{key[:12]}.json"
        self._answers: dict[str, str] = {}
        self._new = 0
        if self.path.is_file():
            try:
                self._answers = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("ignoring an unreadable replay cache %s", self.path)

    def __call__(self, prompt: str) -> str:
        if prompt not in self._answers:
            self._answers[prompt] = generate(self.engine, prompt)
            self._new += 1
        return self._answers[prompt]

    def save(self) -> None:
        if not self._new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._answers, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(self.path)
        self._new = 0
