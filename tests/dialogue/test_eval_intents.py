"""``dialoop eval intents``: the dialogue manager's classifier on CSV, BANKING77 and CLINC
data; clear errors for data it cannot read."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.dialogue.intent import IntentClassifier
from dialoop.engine.embedding import default_embedder
from dialoop.errors import ConfigError
from dialoop.eval.intents import domain_of, few_shot, load_intent_data

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77" / "banking_data"

TRAIN = {
    "card_lost": ["I lost my card", "my card is missing", "I can't find my bank card",
                  "someone stole my card", "my debit card was stolen", "card gone missing"],
    "transfer_fee": ["how much does a transfer cost", "is there a fee for sending money",
                     "what do you charge for transfers", "transfer charges please",
                     "why was I charged for a transfer", "fees on bank transfers"],
    "exchange_rate": ["what is the exchange rate", "how much is a euro in dollars",
                      "currency conversion rate", "which rate do you use for pounds",
                      "exchange rate for yen", "rate to convert my money"],
}
TEST = [("I think my card got stolen", "card_lost"), ("where is my card, I lost it", "card_lost"),
        ("what fee do I pay to send money", "transfer_fee"),
        ("how much do transfers cost", "transfer_fee"),
        ("what's the rate from euros to dollars", "exchange_rate"),
        ("the conversion rate for pounds", "exchange_rate")]


def _write(path: Path, rows: list[tuple[str, str]], header: tuple[str, str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(*args: str) -> tuple[int, str]:
    """Exit code and output; a DialoopError (one line on stderr under ``dialoop``) is
    raised through the runner, so its message is appended."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, ConfigError), result.exception
        return 1, result.output + str(result.exception)
    return result.exit_code, result.output


@pytest.fixture
def banking_folder(tmp_path: Path) -> Path:
    _write(tmp_path / "train.csv", [(t, i) for i, ts in TRAIN.items() for t in ts],
           ("text", "category"))
    _write(tmp_path / "test.csv", TEST, ("text", "category"))
    return tmp_path


def test_scores_a_banking77_folder_and_few_shot_samples(banking_folder: Path) -> None:
    code, out = run("eval", "intents", "--data", str(banking_folder), "--format", "banking77",
                    "--json")
    assert code == 0, out
    report = json.loads(out[out.index("["):])[0]
    assert report["intents"] == 3 and report["train_examples"] == 18
    assert report["test_examples"] == 6 and report["accuracy"] >= 5 / 6
    assert report["out_of_scope"] is None
    code, out = run("eval", "intents", "--data", str(banking_folder), "--format", "banking77",
                    "--shots", "2", "--seeds", "2")
    assert code == 0, out
    assert out.count("2 shots per intent") == 2 and "6 train" in out and "median of 2" in out


def test_few_shot_keeps_k_per_intent_and_depends_on_the_seed() -> None:
    examples = [(t, i) for i, ts in TRAIN.items() for t in ts]
    one, two = few_shot(examples, 2, seed=0), few_shot(examples, 2, seed=1)
    assert sorted(label for _, label in one) == sorted(list(TRAIN) * 2)
    assert one != two and few_shot(examples, 2, seed=0) == one
    assert len(few_shot(examples, 50, seed=0)) == len(examples)


def test_csv_with_an_out_of_scope_label_reports_its_precision_and_recall(tmp_path: Path) -> None:
    oos = ["what's the weather tomorrow", "tell me a joke", "who won the football match",
           "play some music", "how tall is mount everest", "recommend a film"]
    rows = [(t, i) for i, ts in TRAIN.items() for t in ts] + [(t, "oos") for t in oos]
    train = _write(tmp_path / "train.csv", rows, ("utterance", "intent"))
    test = _write(tmp_path / "test.csv", [*TEST, ("what is the capital of peru", "oos")],
                  ("utterance", "intent"))
    data = load_intent_data(test, "csv", train, out_of_scope="oos")
    assert domain_of(data).spec.understanding.out_of_domain_intent == "oos"
    code, out = run("eval", "intents", "--data", str(test), "--train", str(train),
                    "--oos-label", "oos", "--json")
    assert code == 0, out
    report = json.loads(out[out.index("["):])[0]
    assert set(report["out_of_scope"]) == {"precision", "recall"}


def test_clinc_json(tmp_path: Path) -> None:
    raw = {"train": [[t, i] for i, ts in TRAIN.items() for t in ts],
           "test": [list(x) for x in TEST],
           "oos_train": [["tell me a joke", "oos"], ["play some music", "oos"],
                         ["what's the weather", "oos"]],
           "oos_test": [["who won the match", "oos"]], "val": [], "oos_val": []}
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(raw))
    data = load_intent_data(path, "clinc")
    assert data.out_of_scope == "oos" and len(data.train) == 21 and len(data.test) == 7


@pytest.mark.parametrize(("data", "args", "message"), [
    ("test.csv", ["--format", "csv"], "--train"),
    (".", ["--format", "banking77", "--train", "x.csv"], "must hold train.csv"),
    ("test.csv", ["--format", "clinc"], "not CLINC150"),
])
def test_unreadable_data_is_a_clear_error(banking_folder: Path, data: str, args: list[str],
                                          message: str) -> None:
    code, out = run("eval", "intents", "--data", str(banking_folder / data), *args)
    assert code != 0 and message in out


def test_a_header_without_text_or_label_columns_and_unknown_test_labels(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.csv", [("a", "b")], ("question", "answer"))
    with pytest.raises(ConfigError, match="text column"):
        load_intent_data(bad, "csv", bad)
    train = _write(tmp_path / "train.csv", [("I lost my card", "card_lost"),
                                            ("card stolen", "card_lost")], ("text", "label"))
    test = _write(tmp_path / "test.csv", [("hello", "greet")], ("text", "label"))
    code, out = run("eval", "intents", "--data", str(test), "--train", str(train))
    assert code != 0 and "no training example: greet" in out


def test_batch_classification_is_what_a_turn_gets(banking_folder: Path) -> None:
    data = load_intent_data(banking_folder, "banking77")
    classifier = IntentClassifier(domain_of(data), default_embedder())
    messages = [t for t, _ in TEST]
    batch = classifier.classify_many(messages)
    for message, result in zip(messages, batch, strict=True):
        one = classifier.classify(message)
        assert one.intent == result.intent
        assert one.confidence == pytest.approx(result.confidence, abs=1e-5)


@pytest.mark.skipif(not BANKING77.is_dir(), reason="../shared/data/banking77 is not beside")
def test_reads_the_real_banking77_files() -> None:
    data = load_intent_data(BANKING77, "banking77")
    assert len(data.train) == 10003 and len(data.test) == 3080
    assert len({label for _, label in data.train}) == 77
