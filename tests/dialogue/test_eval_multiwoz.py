"""``dialoop eval multiwoz``: MultiWOZ 2.1 belief states normalised as papers do, joint goal
accuracy and slot F1 computed right, the value-matching tracker filling slots, the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.errors import ConfigError
from dialoop.eval.multiwoz import (
    evaluate_tracker,
    load_dialogues,
    normalise_state,
    normalise_value,
    score_turns,
    value_tracker,
)

MULTIWOZ = Path(__file__).resolve().parents[3] / "shared" / "data" / "multiwoz21"


def _metadata(**semi: dict[str, str]) -> dict:
    """A system turn's metadata: every domain present, the given ``semi`` slots set."""
    empty = {"book": {"booked": [], "people": "", "day": ""}, "semi": {}}
    out = {d: json.loads(json.dumps(empty)) for d in
           ("taxi", "police", "restaurant", "hospital", "hotel", "attraction", "train", "bus")}
    for domain, slots in semi.items():
        for slot, value in slots.items():
            part, _, name = slot.rpartition(".")
            out[domain][part or "semi"][name] = value
    return out


DIALOGUES = {
    "SNG001": {"goal": {}, "log": [
        {"text": "I need a cheap hotel in the north .", "metadata": {}},
        {"text": "Do you want parking ?",
         "metadata": _metadata(hotel={"pricerange": "cheap", "area": "north",
                                      "name": "not mentioned"})},
        {"text": "Yes , free parking please . The area does n't matter actually .",
         "metadata": {}},
        {"text": "How about the Acorn Guest House ?",
         "metadata": _metadata(hotel={"pricerange": "cheap", "area": "dont care",
                                      "parking": "yes"},
                               police={"name": "parkside"})},
        {"text": "Book it for 3 people for 2 nights .", "metadata": {}},
        {"text": "Done .", "metadata": _metadata(hotel={
            "pricerange": "cheap", "area": "dont care", "parking": "yes",
            "name": "acorn guest house", "book.people": "3", "book.stay": "2"})},
    ]},
    "MUL002": {"goal": {}, "log": [
        {"text": "I want a train from cambridge to ely on Tuesday .", "metadata": {}},
        {"text": "When ?", "metadata": _metadata(train={
            "departure": "cambridge", "destination": "ely", "day": "tuesday"})},
    ]},
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "multiwoz"
    (folder / "db").mkdir(parents=True)
    with zipfile.ZipFile(folder / "val.json.zip", "w") as z:
        z.writestr("val.json", json.dumps(DIALOGUES))
    (folder / "db" / "hotel_db.json").write_text(json.dumps(
        [{"name": "acorn guest house"}, {"name": "the lensfield hotel"}]))
    (folder / "db" / "train_db.json").write_text(json.dumps(
        [{"departure": "cambridge", "destination": "ely"}]))
    (folder / "ontology21.json").write_text(json.dumps(
        {"train-semi-departure": ["cambridge", "ely", "cambridge|ely"]}))
    return folder


def test_values_are_normalised_as_papers_do() -> None:
    assert normalise_value("Not Mentioned") is None
    assert normalise_value("") is None
    assert normalise_value("none") is None
    assert normalise_value("do n't care") == "dontcare"
    assert normalise_value("dont care") == "dontcare"
    assert normalise_value(" Guest House ") == "guesthouse"
    assert normalise_value("center") == "centre"


def test_states_keep_five_domains_and_drop_booked_lists() -> None:
    state = normalise_state(_metadata(hotel={"area": "East", "book.people": "2"},
                                      police={"name": "parkside"},
                                      hospital={"department": "cardiology"}))
    assert state == {"hotel-area": "east", "hotel-book-people": "2"}


def test_dialogues_pair_each_user_turn_with_the_state_after_it(data: Path) -> None:
    dialogues = load_dialogues(data)
    assert [d.id for d in dialogues] == ["SNG001", "MUL002"]
    first = dialogues[0].turns
    assert first[0].system == "" and first[1].system == "Do you want parking ?"
    assert first[1].state == {"hotel-pricerange": "cheap", "hotel-area": "dontcare",
                              "hotel-parking": "yes"}
    assert len(load_dialogues(data, limit=1)) == 1


def test_joint_goal_needs_every_slot_and_f1_counts_pairs() -> None:
    gold = {"hotel-area": "north", "hotel-stars": "4"}
    jga, precision, recall, f1 = score_turns([
        (gold, gold),                                          # right
        ({"hotel-area": "north"}, gold),                       # one slot missing
        ({"hotel-area": "north", "hotel-stars": "3"}, gold),   # one slot wrong
        ({}, {}),                                              # nothing to track: right
    ])
    assert jga == pytest.approx(0.5)
    assert precision == pytest.approx(4 / 5)  # 4 right pairs of 5 predicted
    assert recall == pytest.approx(4 / 6)     # 4 right pairs of 6 gold
    assert f1 == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))


def test_value_tracker_fills_carries_and_takes_dontcare(data: Path) -> None:
    tracker = value_tracker(data)
    assert tracker.update("I need a cheap hotel in the north .") == {
        "hotel-pricerange": "cheap", "hotel-area": "north"}
    state = tracker.update("Yes , free parking please . The area does n't matter actually .",
                           "Do you want parking ?")
    assert state == {"hotel-pricerange": "cheap", "hotel-area": "dontcare",
                     "hotel-parking": "yes"}
    state = tracker.update("Book it for 3 people for 2 nights .",
                           "How about the Acorn Guest House ?")
    assert state["hotel-name"] == "acorn guest house"  # offered, then accepted
    assert state["hotel-book-people"] == "3" and state["hotel-book-stay"] == "2"
    tracker.reset()
    assert tracker.update("I want a train from cambridge to ely on Tuesday .") == {
        "train-departure": "cambridge", "train-destination": "ely", "train-day": "tuesday"}


def test_evaluation_reports_on_the_held_out_split(data: Path) -> None:
    dialogues = load_dialogues(data)
    full = evaluate_tracker(dialogues, value_tracker(data))
    assert full.turns == 4 and full.joint_goal_accuracy == 1.0 and full.empty_state_jga == 0.0
    held_out = evaluate_tracker(dialogues, value_tracker(data), split=1)
    assert held_out.dialogues == 1 and held_out.turns == 1


def test_cli_prints_jga_and_slot_f1(data: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "multiwoz", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["turns"] == 4 and report["joint_goal_accuracy"] == 1.0
    result = CliRunner().invoke(cli, ["eval", "multiwoz", "--data", str(data), "--split", "1"])
    assert result.exit_code == 0, result.output
    assert "joint goal accuracy  1.000" in result.stdout and "slot F1" in result.stdout
    assert "TRADE" in result.stdout


def test_cli_says_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "multiwoz", "--data", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)  # main() prints it as one line
    assert "val.json.zip" in str(result.exception)
    with pytest.raises(ConfigError):
        load_dialogues(tmp_path / "missing.json")


@pytest.mark.skipif(not (MULTIWOZ / "val.json.zip").is_file(),
                    reason="../shared/data/multiwoz21 is not beside the project")
def test_real_dialogues_load_and_score_above_predicting_nothing() -> None:
    dialogues = load_dialogues(MULTIWOZ, limit=20)
    assert len(dialogues) == 20
    slots = {slot for d in dialogues for t in d.turns for slot in t.state}
    assert slots and all(s.split("-")[0] in {"hotel", "train", "restaurant", "attraction", "taxi"}
                         for s in slots)
    report = evaluate_tracker(dialogues, value_tracker(MULTIWOZ))
    assert report.joint_goal_accuracy > report.empty_state_jga + 0.1
    assert report.slot_f1 > 0.5


def test_value_tracker_resolves_references_from_the_state(data: Path) -> None:
    tracker = value_tracker(data)
    tracker.update("I want the lensfield hotel in the north please .")
    state = tracker.update("I need a taxi from the hotel to ely by 17:15 .")
    assert state["taxi-departure"] == "lensfield hotel"   # "the hotel" is the one chosen
    assert state["taxi-destination"] == "ely" and state["taxi-arriveby"] == "17:15"
    state = tracker.update("Also a train out of ely on the same day .")
    assert state["train-departure"] == "ely"


def test_schema_says_each_type_as_its_fixed_label_and_stations_may_be_misspelt(
        data: Path) -> None:
    (data / "ontology21.json").write_text(json.dumps(
        {"attraction-semi-type": ["night club", "concerthall"],
         "train-semi-departure": ["cambridge", "ely", "bishops stortford"]}))
    tracker = value_tracker(data)
    # the ontology spells it "night club"; the label is fixed to "nightclub"
    assert tracker.update("I want to find a nightclub .") == {"attraction-type": "nightclub"}
    tracker.reset()
    state = tracker.update("I need a train from bishop stortfort to ely .")
    assert state == {"train-departure": "bishops stortford", "train-destination": "ely"}
    tracker.reset()
    assert tracker.update("Are there any guesthouses in the north ?") == {
        "hotel-type": "guesthouse", "hotel-area": "north"}
    tracker.reset()
    assert tracker.update("I want a hotel with a star rating of 4 .") == {"hotel-stars": "4"}


def test_schema_keeps_the_when_a_name_is_one_word_after_it(data: Path) -> None:
    (data / "db" / "restaurant_db.json").write_text(json.dumps(
        [{"name": "The Gandhi"}, {"name": "the lucky star"}]))
    tracker = value_tracker(data)
    assert tracker.update("Book me a table at The Gandhi restaurant .") == {
        "restaurant-name": "the gandhi"}        # as annotators write it
    tracker.reset()
    assert tracker.update("I want the restaurant the lucky star .") == {
        "restaurant-name": "lucky star"}        # "the" dropped, as for most names


def test_schema_reads_adults_and_a_group_of_people(data: Path) -> None:
    tracker = value_tracker(data)
    assert tracker.update("I need a train on tuesday , please book three adult tickets .")[
        "train-book-people"] == "3"
    tracker.reset()
    assert tracker.update("I need a hotel room for a group of five .")[
        "hotel-book-people"] == "5"
