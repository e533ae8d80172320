"""The schema-driven value tracker (dialogue/tracker.py) on a small hand-made schema: a
shop domain with named branches and a courier domain whose places are those branches."""

from __future__ import annotations

from dialoop.dialogue.tracker import SlotSchema, TrackerSchema, ValueTracker

BRANCHES = {"riverside market": "riverside market", "hilltop corner store": "hilltop corner store"}
PLACES = {**BRANCHES, "central depot": "central depot"}


def _tracker() -> ValueTracker:
    slots = (
        SlotSchema("shop-name", "shop", values=BRANCHES, cues=("name", "called"), offered=True,
                   fuzzy=True),
        SlotSchema("shop-area", "shop", values={"north": "north", "south": "south"},
                   cues=("area", "side")),
        SlotSchema("shop-opening", "shop", "time", cues=("open", "opens")),
        SlotSchema("courier-pickup", "courier", values=PLACES, before=("from", "picked up at"),
                   cues=("from", "pickup", "collect"), fuzzy=True,
                   references={"the shop": ("shop-name",)}),
        SlotSchema("courier-dropoff", "courier", values=PLACES, before=("to",),
                   cues=("to", "deliver", "destination"), fuzzy=True,
                   references={"the shop": ("shop-name",)}),
        SlotSchema("courier-leaveat", "courier", "time", cues=("leave", "leaving", "at")),
        SlotSchema("courier-arriveby", "courier", "time", cues=("arrive", "by")),
        SlotSchema("courier-size", "courier", values={"small": "small", "large": "large"},
                   cues=("size", "parcel")),
    )
    return ValueTracker(TrackerSchema(slots, {"shop": ("shop", "store"),
                                              "courier": ("courier", "parcel")}))


def test_a_misspelt_name_is_matched_but_a_short_word_is_not_another_name() -> None:
    tracker = _tracker()
    state = tracker.update("Is the store riversid markett in the north?")
    assert state == {"shop-name": "riverside market", "shop-area": "north"}
    tracker.reset()
    # "a corner store" is one short word away from no name: nothing is guessed
    assert "shop-name" not in tracker.update("I want a corner store please")


def test_a_name_the_current_domain_can_hold_does_not_switch_domains() -> None:
    tracker = _tracker()
    tracker.update("I need a courier for a small parcel")
    state = tracker.update("Please collect it from riverside market", "Where from?")
    assert tracker.active == ["courier"]
    assert state["courier-pickup"] == "riverside market" and "shop-name" not in state


def test_a_reference_to_an_active_domain_is_a_place_not_a_new_request() -> None:
    tracker = _tracker()
    tracker.update("I want the hilltop corner store")
    tracker.update("I also need a courier", "It opens at 9.")
    state = tracker.update("Deliver it to the shop from central depot", "Where to?")
    assert tracker.active == ["courier"]  # "the shop" does not start a shop search
    assert state["courier-dropoff"] == "hilltop corner store"
    assert state["courier-pickup"] == "central depot"


def test_a_reference_falls_back_to_the_value_the_assistant_last_offered() -> None:
    tracker = _tracker()
    tracker.update("Find me a shop in the south")
    state = tracker.update("Thanks, what is the address?", "Riverside Market is in the south.")
    assert "shop-name" not in state  # asked about, not accepted
    state = tracker.update("I need a courier from the shop to central depot", "It is 1 Quay St.")
    assert state["courier-pickup"] == "riverside market"
    assert state["courier-dropoff"] == "central depot"


def test_a_place_either_slot_holds_goes_to_the_one_the_assistant_asked_about() -> None:
    tracker = _tracker()
    tracker.update("I need a courier")
    state = tracker.update("Central depot.", "What is the destination?")
    assert state == {"courier-dropoff": "central depot"}
    state = tracker.update("Riverside market.", "And where should it be picked up from?")
    assert state["courier-pickup"] == "riverside market"


def test_a_before_phrase_of_several_words_counts_and_into_is_not_to() -> None:
    tracker = _tracker()
    state = tracker.update("I need a courier picked up at riverside market")
    assert state["courier-pickup"] == "riverside market"
    tracker.reset()
    state = tracker.update("A courier please, I walked into central depot")
    assert "courier-dropoff" not in state


def test_dontcare_goes_to_the_slot_whose_cue_is_nearest_the_phrase() -> None:
    tracker = _tracker()
    tracker.update("I need a courier")
    state = tracker.update("I do not care about the size, it just has to leave at some point",
                           "What size is the parcel?")
    assert state == {"courier-size": "dontcare"}  # not the time ("leave", "at")


def test_a_time_goes_to_the_slot_whose_longest_cue_precedes_it() -> None:
    tracker = _tracker()
    state = tracker.update("I need a courier to leave the depot by 15:30")
    assert state["courier-leaveat"] == "15:30" and "courier-arriveby" not in state
    tracker.reset()
    state = tracker.update("I need a courier to arrive by 17:00")
    assert state["courier-arriveby"] == "17:00" and "courier-leaveat" not in state


def test_a_value_taken_back_is_not_set() -> None:
    tracker = _tracker()
    tracker.update("Is there a shop in the south?")
    state = tracker.update("Sorry, not in the south, the north side")
    assert state["shop-area"] == "north"
    tracker.reset()
    assert "shop-area" not in tracker.update("A shop, but not the north please")
