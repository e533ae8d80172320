"""A pre-trained encoder fine-tunes into a classifier that fits a tiny intent set, reports
accuracy and macro-F1, and comes back from its folder predicting the same labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.cli.pretrain import classifier as classifier_command
from dialoop.cli.train import train as train_group
from dialoop.transformer.classifier import EncoderClassifier
from dialoop.transformer.finetune import ClassifierConfig, macro_f1, read_labelled
from dialoop.transformer.finetune import _train_and_validation as split
from dialoop.transformer.pretrain import PretrainConfig, pretrain

INTENTS = {
    "greet": ["hello there", "hi friend", "good morning", "hey hello", "hi there", "hello"],
    "refund": ["I want my money back", "refund my order", "money back please",
               "give me a refund", "refund please", "I need a refund now"],
    "track": ["where is my parcel", "track my parcel", "where is the parcel now",
              "parcel tracking please", "has my parcel shipped", "where is it"],
}


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny encoder, pre-trained for two steps (its weights barely matter here)."""
    out = tmp_path_factory.mktemp("encoder")
    pretrain(PretrainConfig(arch="encoder", out=out, steps=2, vocab_size=300, block_size=32,
                            n_layer=1, n_head=2, d_model=32, d_ff=64, eval_rows=8))
    return out


@pytest.fixture
def intents_csv(tmp_path: Path) -> Path:
    path = tmp_path / "intents.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "intent"])
        writer.writerows((t, name) for name, texts in INTENTS.items() for t in texts)
    return path


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_THREADS", "1")


def test_the_command_is_registered() -> None:
    assert train_group.commands["classifier"] is classifier_command


@pytest.mark.usefixtures("one_thread")
def test_train_classifier_overfits_a_tiny_intent_set_and_loads_back(
    encoder_run: Path, intents_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clf"
    result = CliRunner().invoke(cli, ["train", "classifier", "--encoder", str(encoder_run),
                                      "--data", str(intents_csv), "--validation",
                                      str(intents_csv), "--epochs", "25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "3 labels, 18 training" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["epochs"][0]["accuracy"] < 1.0  # it had to learn
    assert report["best"]["accuracy"] == 1.0 and report["best"]["macro_f1"] == 1.0

    model = EncoderClassifier.load(out)
    texts = [t for texts in INTENTS.values() for t in texts]
    predictions = model.predict(texts)
    assert [label for label, _ in predictions] == \
        [name for name, texts in INTENTS.items() for _ in texts]
    assert all(0.34 < confidence <= 1.0 for _, confidence in predictions)
    assert model.predict([]) == []

    # A domain that names the folder gets it as its intent classifier.
    from dialoop.dialogue.domain import load_domain
    from dialoop.dialogue.intent import EncoderIntentClassifier
    from dialoop.dialogue.manager import DialogueManager
    from tests.fakes import FakeEngine, HashEmbedder

    domain_file = tmp_path / "domain.yaml"
    domain_file.write_text("name: tiny\nintents:\n" + "".join(
        f"  {name}: {{examples: [{texts[0]}]}}\n" for name, texts in INTENTS.items())
        + "understanding:\n  classifier: clf\n")
    manager = DialogueManager(load_domain(domain_file), engine=FakeEngine(),
                              embedder=HashEmbedder())
    assert isinstance(manager.classifier, EncoderIntentClassifier)
    result = manager.classifier.classify("refund my order")
    assert result.intent == "refund" and result.ranking[0][0] == "refund"


def test_a_decoder_run_is_refused_as_the_encoder(tmp_path: Path, intents_csv: Path) -> None:
    pretrain(PretrainConfig(arch="decoder", out=tmp_path / "dec", steps=1, vocab_size=300,
                            block_size=16, n_layer=1, n_head=2, d_model=32, d_ff=64,
                            eval_rows=4))
    from dialoop.errors import InvalidInputError
    from dialoop.transformer.finetune import train_classifier

    with pytest.raises(InvalidInputError, match="decoder run, not the encoder"):
        train_classifier(ClassifierConfig(encoder=tmp_path / "dec", data=intents_csv,
                                          out=tmp_path / "clf", epochs=1))


def test_a_banking77_folder_trains_on_train_csv_and_validates_on_test_csv(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "banking77" / "banking_data"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text('text,category\n"Is my card, lost?",lost_card\n'
                                      "hi,greet\n")
    (folder / "test.csv").write_text("text,category\nwhere is my card,lost_card\n")
    train, validation = split(ClassifierConfig(encoder=tmp_path, data=tmp_path / "banking77",
                                               out=tmp_path / "clf"))
    assert train == [("Is my card, lost?", "lost_card"), ("hi", "greet")]
    assert validation == [("where is my card", "lost_card")]


def test_jsonl_and_a_held_out_split_per_label(tmp_path: Path) -> None:
    path = tmp_path / "sentiment.jsonl"
    rows = [{"text": f"good {i}", "sentiment": "pos"} for i in range(10)] + \
        [{"text": f"bad {i}", "sentiment": "neg"} for i in range(10)] + \
        [{"text": "meh", "sentiment": "neutral"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert len(read_labelled(path)) == 21
    train, validation = split(ClassifierConfig(encoder=tmp_path, data=path, out=tmp_path))
    assert sorted(label for _, label in validation) == ["neg", "pos"]  # 10 % of each
    assert ("meh", "neutral") in train  # a single example stays in training


def test_a_csv_without_a_label_column_says_what_it_needs(tmp_path: Path) -> None:
    from dialoop.errors import InvalidInputError

    path = tmp_path / "bad.csv"
    path.write_text("utterance,tag\nhello,greet\n")
    with pytest.raises(InvalidInputError, match="needs a 'text' field and a label field"):
        read_labelled(path)


def test_macro_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    gold = [0, 0, 1, 1, 2, 2, 2, 0]
    predicted = [0, 1, 1, 1, 2, 0, 2, 3]
    expected = f1_score(gold, predicted, average="macro")
    assert macro_f1(predicted, gold, 4) == pytest.approx(expected)
