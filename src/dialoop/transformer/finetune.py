"""Fine-tuning a pre-trained encoder into a text classifier, as one recipe.

    from dialoop.transformer.finetune import ClassifierConfig, train_classifier

    report = train_classifier(ClassifierConfig(encoder=Path("runs/pretrain-encoder"),
                                               data=Path("intents.csv"), out=Path("clf")))
    EncoderClassifier.load("clf").predict(["where is my card?"])  # [("card_arrival", 0.93)]

1. Labelled texts are read from CSV (a header with a text column and a label column:
   ``label``, ``intent``, ``category`` as in BANKING77, or ``sentiment``), JSONL (the
   same keys) or a folder holding train.csv and, for validation, test.csv (BANKING77's
   layout). Without a validation file, ``validation_fraction`` of each label's examples
   is held out (at least one stays in training).
2. The encoder of a ``dialoop train pretrain --arch encoder`` run gets a linear head over
   its pooled output (dialoop/transformer/classifier.py); all of it is trained with
   AdamW, warm-up and cosine decay, clipping, batches padded to their longest text.
3. After each epoch: validation accuracy and macro-F1 (the mean of the per-label F1, so
   that rare intents count as much as common ones). The best epoch by macro-F1 is saved.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dialoop.errors import InvalidInputError
from dialoop.transformer.classifier import EncoderClassifier, Pooling, encode_texts
from dialoop.transformer.pretrain import load_run
from dialoop.transformer.schedule import learning_rate

__all__ = ["ClassifierConfig", "macro_f1", "read_labelled", "train_classifier"]

log = logging.getLogger(__name__)

_LABEL_KEYS = ("label", "intent", "category", "sentiment")


@dataclass(frozen=True)
class ClassifierConfig:
    encoder: Path  # a `dialoop train pretrain --arch encoder` run folder
    data: Path  # CSV, JSONL, or a folder with train.csv (and test.csv)
    out: Path
    validation: Path | None = None  # default: test.csv next to train.csv, else a split
    pooling: Pooling = "mean"
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    validation_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        problems = [
            (self.epochs < 1, "--epochs must be at least 1"),
            (self.batch_size < 1, "batch_size must be at least 1"),
            (self.pooling not in ("cls", "mean"), f"pooling {self.pooling!r}: choose cls or mean"),
            (not 0 < self.validation_fraction < 1, "validation_fraction must be in (0, 1)"),
        ]
        for bad, message in problems:
            if bad:
                raise InvalidInputError(f"{message}.")


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs from a CSV or JSONL file."""
    if not path.is_file():
        raise InvalidInputError(f"No labelled data at {path}: check the path.")
    if path.suffix.lower() in (".jsonl", ".json"):
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                   if line.strip()]
    else:
        with path.open(newline="", encoding="utf-8") as f:
            records = list(csv.DictReader(f))
    pairs = []
    for n, record in enumerate(records, 1):
        key = next((k for k in _LABEL_KEYS if k in record), None)
        if "text" not in record or key is None:
            raise InvalidInputError(
                f"{path}, record {n}: it needs a 'text' field and a label field (one of "
                f"{', '.join(_LABEL_KEYS)}); it has {', '.join(record) or 'none'}. A CSV "
                "needs a header line such as text,label.")
        text, label = str(record["text"]).strip(), str(record[key]).strip()
        if text and label:
            pairs.append((text, label))
    if not pairs:
        raise InvalidInputError(f"{path} holds no labelled texts.")
    return pairs


def _train_and_validation(config: ClassifierConfig
                          ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    data, validation = config.data, config.validation
    if data.is_dir():
        folder = data / "banking_data" if (data / "banking_data").is_dir() else data
        if not (folder / "train.csv").is_file():
            raise InvalidInputError(f"{data} is a folder without train.csv: give a CSV or "
                                    "JSONL file, or a folder with train.csv (and test.csv).")
        data = folder / "train.csv"
        if validation is None and (folder / "test.csv").is_file():
            validation = folder / "test.csv"
    train = read_labelled(data)
    if validation is not None:
        return train, read_labelled(validation)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for pair in train:
        by_label.setdefault(pair[1], []).append(pair)
    rng, kept, held = random.Random(config.seed), [], []
    for pairs in by_label.values():
        rng.shuffle(pairs)
        n_val = min(len(pairs) - 1, round(len(pairs) * config.validation_fraction))
        held += pairs[:n_val]
        kept += pairs[n_val:]
    if not held:
        raise InvalidInputError(f"{data} is too small to hold any example out: give at "
                                "least two examples of a label, or a --validation file.")
    return kept, held


def macro_f1(predicted: list[int], gold: list[int], n_labels: int) -> float:
    """The unweighted mean of F1 = 2PR / (P + R) over the labels that are present or
    predicted (as scikit-learn's ``f1_score(average="macro")``)."""
    scores = []
    for label in range(n_labels):
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        fn = sum(g == label != p for p, g in zip(predicted, gold, strict=True))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def train_classifier(config: ClassifierConfig, *, progress: bool = False) -> dict[str, Any]:
    """Fine-tune, evaluate each epoch, save the best epoch to ``config.out``; the report
    (also ``out/report.json``)."""
    from tqdm import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    train, validation = _train_and_validation(config)
    labels = sorted({label for _, label in train})
    index = {label: i for i, label in enumerate(labels)}
    unseen = sorted({label for _, label in validation} - set(labels))
    if unseen:
        raise InvalidInputError(f"The validation data has labels the training data lacks: "
                                f"{', '.join(unseen[:5])}. Give each label training examples.")
    encoder, tokenizer, _ = load_run(config.encoder, "encoder")
    torch.manual_seed(config.seed)
    model = EncoderClassifier(encoder, labels, tokenizer, pooling=config.pooling,  # type: ignore[arg-type]
                              dropout=config.dropout)
    T = encoder.config.block_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(train) // config.batch_size)
    total = steps_per_epoch * config.epochs
    rng = random.Random(config.seed)
    epochs, best, step, started = [], None, 0, time.perf_counter()
    bar = tqdm(total=total, disable=not progress, unit="step", desc="train classifier")
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = [train[i] for i in order[start: start + config.batch_size]]
            ids = encode_texts(tokenizer, [t for t, _ in batch], T)  # (B, T')
            targets = torch.tensor([index[label] for _, label in batch])  # (B,)
            lr = learning_rate(step, step / total, lr_max=config.lr,
                               lr_min=config.lr * config.min_lr_ratio, warmup=config.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(ids), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch)
        entry = {"epoch": epoch, "train_loss": sum(losses) / len(losses),
                 **_evaluate(model, validation, index)}
        epochs.append(entry)
        log.info("epoch %d: %s", epoch, entry)
        if best is None or entry["macro_f1"] > best["macro_f1"]:
            best = entry
            model.save(config.out)
    bar.close()
    assert best is not None
    report = {"out": str(config.out), "encoder": str(config.encoder), "labels": len(labels),
              "train_examples": len(train), "validation_examples": len(validation),
              "pooling": config.pooling, "epochs": epochs, "best": best,
              "train_seconds": round(time.perf_counter() - started, 2),
              "label_counts": dict(Counter(label for _, label in train).most_common())}
    (config.out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def _evaluate(model: EncoderClassifier, validation: list[tuple[str, str]],
              index: dict[str, int]) -> dict[str, float]:
    probs = model.probabilities([t for t, _ in validation])  # (N, L)
    predicted = probs.argmax(-1).tolist()
    gold = [index[label] for _, label in validation]
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    return {"accuracy": accuracy, "macro_f1": macro_f1(predicted, gold, len(index))}
