"""The learned gate over the value tracker's proposals (dialogue/gate.py): it learns from
annotated turns which proposals people count as the goal, keeps what it learned across a
save and load, refuses what it cannot learn from, and the CLI trains and uses one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.dialogue.gate import LearnedGate, Turn, train_gate
from dialoop.dialogue.tracker import SlotSchema, TrackerSchema, ValueTracker
from dialoop.errors import ConfigError

MULTIWOZ = Path(__file__).resolve().parents[3] / "shared" / "data" / "multiwoz21"
COLOURS = ("red", "blue", "green", "black", "white", "grey")


def _schema() -> TrackerSchema:
    return TrackerSchema((
        SlotSchema("shop-colour", "shop", values={c: c for c in COLOURS}, cues=("colour",),
                   offered=True),
        SlotSchema("trip-from", "trip", values={"home": "home", "work": "work", "ely": "ely"},
                   cues=("from",), before=("from",), implied={"trip-to": "home"}),
        SlotSchema("trip-to", "trip", values={"home": "home", "work": "work", "ely": "ely"},
                   cues=("to",), before=("to",)),
    ), {"shop": ("shop", "lamp"), "trip": ("trip", "ride")})


def _dialogues(n: int) -> list[list[Turn]]:
    """The assistant offers a colour; the user buys it (the annotation sets it) or asks
    about it (the annotation does not). Neither says a word the rules take as a "yes"."""
    out = []
    for i in range(n):
        colour = COLOURS[i % len(COLOURS)]
        first = Turn("i need a lamp", "", {})
        offer = f"how about the {colour} lamp"
        if i % 2:
            out.append([first, Turn("i will buy it then", offer, {"shop-colour": colour})])
        else:
            out.append([first, Turn("what is the address of the shop", offer, {})])
    return out


class _Spy:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []

    def keep(self, tracker: ValueTracker, user: str, system: str,
             proposals: Sequence[tuple[str, str, bool]]) -> list[bool]:
        self.seen += proposals
        return [not loose for _, _, loose in proposals]


def test_gate_learns_which_offers_are_taken_where_the_rules_take_none() -> None:
    gate = train_gate(ValueTracker(_schema()), _dialogues(240))
    assert gate.info["dialogues"] == 240 and gate.info["proposals"] >= 240
    tracker = ValueTracker(_schema(), gate)
    rules = ValueTracker(_schema())
    for t in (tracker, rules):
        t.update("i need a lamp")
    assert tracker.update("alright i will buy it", "how about the grey lamp") == {
        "shop-colour": "grey"}
    assert rules.update("alright i will buy it", "how about the grey lamp") == {}
    tracker.reset()
    tracker.update("i need a lamp")
    assert tracker.update("what is the address of it", "how about the grey lamp") == {}


def test_a_saved_gate_decides_as_before_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    gate = train_gate(ValueTracker(_schema()), _dialogues(240))
    path = gate.save(tmp_path / "gates" / "shop.joblib")
    again = LearnedGate.load(path)
    assert again.threshold == gate.threshold and again.info == gate.info
    for user in ("i will buy it", "what is the address of the shop"):
        decide = [ValueTracker(_schema(), g) for g in (gate, again)]
        for t in decide:
            t.update("i need a lamp")
        assert decide[0].update(user, "how about the red lamp") == decide[1].update(
            user, "how about the red lamp")
    (tmp_path / "bad.joblib").write_bytes(b"not a gate")
    with pytest.raises(ConfigError, match="not a tracker gate"):
        LearnedGate.load(tmp_path / "bad.joblib")
    with pytest.raises(ConfigError, match="train tracker-gate"):
        LearnedGate.load(tmp_path / "missing.joblib")


def test_training_needs_both_kept_and_dropped_proposals() -> None:
    taken = [d for d in _dialogues(40) if d[1].state]
    with pytest.raises(ConfigError, match="more annotated dialogues"):
        train_gate(ValueTracker(_schema()), taken)


def test_an_implied_value_is_a_guess_only_a_gate_sees() -> None:
    spy = _Spy()
    gated = ValueTracker(_schema(), spy)
    rules = ValueTracker(_schema())
    assert rules.update("a ride to work please") == {"trip-to": "work"}
    assert gated.update("a ride to work please") == {"trip-to": "work"}
    assert ("trip-from", "home", True) in spy.seen
    spy.seen.clear()
    gated.reset()
    gated.update("a ride to home please")  # the other end is the implied value: no guess
    assert not [p for p in spy.seen if p[0] == "trip-from"]


@pytest.mark.skipif(not (MULTIWOZ / "val.json.zip").is_file(),
                    reason="../shared/data/multiwoz21 is not beside the project")
def test_cli_trains_a_gate_and_evaluates_with_it(tmp_path: Path) -> None:
    out = tmp_path / "gate.joblib"
    result = CliRunner().invoke(cli, ["train", "tracker-gate", "--data", str(MULTIWOZ),
                                      "--dialogues", "80", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "80 dialogues" in result.stdout and out.is_file()
    result = CliRunner().invoke(cli, ["eval", "multiwoz", "--data", str(MULTIWOZ), "--limit",
                                      "120", "--split", "80", "--gate", str(out)])
    assert result.exit_code == 0, result.output
    assert "dialogues 81–120" in result.stdout and "joint goal accuracy" in result.stdout
    assert "warning" not in result.output
    result = CliRunner().invoke(cli, ["eval", "multiwoz", "--data", str(MULTIWOZ), "--limit",
                                      "120", "--split", "40", "--gate", str(out)])
    assert "trained on the first 80 dialogues" in result.output
