"""Intent classification on standard data sets (BANKING77, CLINC150, any CSV).

The classifier measured is the one the dialogue manager runs
(:class:`~dialoop.dialogue.intent.IntentClassifier`): the training examples become the
intents of a domain, the classifier is trained on them exactly as it is for a domain
file, and every test message goes through :meth:`IntentClassifier.classify_many`, the
batch form of what a turn calls (out-of-domain rule included). ``dialoop eval intents``.

Formats:

- ``banking77``: ``text,category`` CSV files (PolyAI's release); ``--data`` is the folder
  holding ``train.csv`` and ``test.csv``, or the test file with ``--train``.
- ``clinc``: CLINC150's ``data_full.json`` (``train``/``test`` and ``oos_train``/``oos_test``
  lists of ``[text, intent]``); the out-of-scope messages are labelled ``oos``, which
  becomes the domain's out-of-domain intent.
- ``csv``: any CSV with a header naming a text column (``text``, ``utterance``,
  ``sentence``, ``example``) and a label column (``label``, ``intent``, ``category``).

``shots=K`` keeps K random training examples per intent (the few-shot setting).
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialoop.dialogue.domain import Domain, DomainSpec, IntentSpec, UnderstandingSpec
from dialoop.dialogue.intent import IntentClassifier
from dialoop.engine.embedding import Embedder
from dialoop.errors import ConfigError

__all__ = ["FORMATS", "IntentData", "IntentReport", "evaluate_intents", "load_intent_data"]

FORMATS = ("banking77", "clinc", "csv")
CLINC_OOS = "oos"
_TEXT_COLUMNS = ("text", "utterance", "sentence", "example")
_LABEL_COLUMNS = ("label", "intent", "category")

Example = tuple[str, str]  # (text, intent)


@dataclass(frozen=True)
class IntentData:
    train: list[Example]
    test: list[Example]
    out_of_scope: str | None = None  # the label of out-of-scope messages, if the data has it


@dataclass
class IntentReport:
    data: str
    format: str
    shots: int | None
    seed: int
    intents: int
    train_examples: int
    test_examples: int
    accuracy: float
    macro_f1: float
    out_of_scope: dict[str, float] | None  # precision, recall (None: the data has no such label)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)  # gold, said, count
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "format": self.format, "shots": self.shots,
                "seed": self.seed, "intents": self.intents,
                "train_examples": self.train_examples, "test_examples": self.test_examples,
                "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
                "out_of_scope": self.out_of_scope,
                "confusions": [list(c) for c in self.confusions],
                "seconds": {k: round(v, 1) for k, v in self.seconds.items()}}


def load_intent_data(data: Path, fmt: str, train: Path | None = None,
                     out_of_scope: str | None = None) -> IntentData:
    """Training and test examples from ``data`` (see the module's formats)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown intent data format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not data.exists():
        raise ConfigError(f"{data} does not exist")
    if fmt == "clinc":
        if train is not None:
            raise ConfigError("--train does not apply to clinc: data_full.json holds both sets")
        return _clinc(data)
    if data.is_dir():
        if train is not None:
            raise ConfigError("--data is a folder: it must hold train.csv and test.csv, "
                              "or give the test CSV itself with --train")
        train, data = data / "train.csv", data / "test.csv"
    if train is None:
        raise ConfigError(f"{fmt}: give the training examples with --train FILE "
                          "(or --data a folder holding train.csv and test.csv)")
    sets = IntentData(_csv(train), _csv(data), out_of_scope)
    if out_of_scope is not None and all(label != out_of_scope for _, label in sets.train):
        raise ConfigError(f"no training example is labelled {out_of_scope!r} (--oos-label)")
    return sets


def _csv(path: Path) -> list[Example]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        text = next((h for h in _TEXT_COLUMNS if h in header), None)
        label = next((h for h in _LABEL_COLUMNS if h in header), None)
        if text is None or label is None:
            raise ConfigError(f"{path}: the header needs a text column "
                              f"({', '.join(_TEXT_COLUMNS)}) and a label column "
                              f"({', '.join(_LABEL_COLUMNS)}); it has {header}")
        rows = []
        for n, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not row[text] or not row[label]:
                raise ConfigError(f"{path}:{n}: an empty text or label")
            rows.append((row[text], row[label]))
    if not rows:
        raise ConfigError(f"{path} has no examples")
    return rows


def _clinc(path: Path) -> IntentData:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        train = [(t, i) for t, i in raw["train"]] + [(t, CLINC_OOS) for t, _ in raw["oos_train"]]
        test = [(t, i) for t, i in raw["test"]] + [(t, CLINC_OOS) for t, _ in raw["oos_test"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not CLINC150's data_full.json ({exc})") from exc
    return IntentData(train, test, CLINC_OOS)


def few_shot(examples: Sequence[Example], shots: int, seed: int) -> list[Example]:
    """``shots`` random examples of every intent (all of an intent that has fewer)."""
    by_intent: dict[str, list[Example]] = {}
    for example in examples:
        by_intent.setdefault(example[1], []).append(example)
    rng = random.Random(seed)
    return [e for _, group in sorted(by_intent.items())
            for e in rng.sample(group, min(shots, len(group)))]


def domain_of(data: IntentData, name: str = "intents") -> Domain:
    """The training examples as a domain of intents (no slots, no tools)."""
    intents: dict[str, list[str]] = {}
    for text, label in data.train:
        intents.setdefault(label, []).append(text)
    understanding = UnderstandingSpec(out_of_domain_intent=data.out_of_scope,
                                      llm_fallback=False)
    spec = DomainSpec(name=name, understanding=understanding,
                      intents={k: IntentSpec(examples=v) for k, v in intents.items()})
    return Domain(spec)


def evaluate_intents(data: IntentData, embedder: Embedder, *, shots: int | None = None,
                     seed: int = 0, source: str = "", fmt: str = "csv") -> IntentReport:
    """Train the dialogue manager's intent classifier on ``data.train`` (``shots`` per
    intent if given) and score it on ``data.test``."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    train = few_shot(data.train, shots, seed) if shots else list(data.train)
    trained = IntentData(train, data.test, data.out_of_scope)
    known = {label for _, label in train}
    unknown = sorted({label for _, label in data.test} - known)
    if unknown:
        raise ConfigError(f"test labels with no training example: {', '.join(unknown[:5])}"
                          f"{' …' if len(unknown) > 5 else ''}")
    started = time.perf_counter()
    classifier = IntentClassifier(domain_of(trained), embedder, seed=seed)
    trained_at = time.perf_counter()
    said = [r.intent for r in classifier.classify_many([t for t, _ in data.test])]
    done = time.perf_counter()
    gold = [label for _, label in data.test]
    accuracy = sum(g == s for g, s in zip(gold, said, strict=True)) / len(gold)
    # Over the intents that occur in the test set or in the answers (scikit-learn's default):
    # an intent that was never asked and never said has no F1 to average.
    macro = float(f1_score(gold, said, average="macro", zero_division=0))
    oos = None
    if data.out_of_scope is not None:
        p, r, _, _ = precision_recall_fscore_support(
            gold, said, labels=[data.out_of_scope], average=None, zero_division=0)
        oos = {"precision": round(float(p[0]), 4), "recall": round(float(r[0]), 4)}
    confusions = Counter((g, s) for g, s in zip(gold, said, strict=True) if g != s)
    return IntentReport(
        data=source, format=fmt, shots=shots, seed=seed, intents=len(known),
        train_examples=len(train), test_examples=len(gold), accuracy=accuracy,
        macro_f1=macro, out_of_scope=oos,
        confusions=[(g, s, n) for (g, s), n in confusions.most_common(5)],
        seconds={"train": trained_at - started, "test": done - trained_at})
