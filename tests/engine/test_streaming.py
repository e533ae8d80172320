"""Token bytes become text without broken characters or half-shown stop strings."""

from __future__ import annotations

from dialoop.engine.streaming import TextStream


def test_a_character_split_across_tokens_is_shown_whole() -> None:
    stream = TextStream()
    euro = "€".encode()  # three bytes
    assert stream.feed(b"price: " + euro[:1]) == "price: "
    assert stream.feed(euro[1:2]) == ""
    assert stream.feed(euro[2:] + b"5") == "€5"
    assert stream.flush() == ""


def test_stop_string_split_across_tokens_is_never_shown() -> None:
    stream = TextStream(("END",))
    shown = stream.feed(b"Answer: 42 E") + stream.feed(b"N") + stream.feed(b"D and more")
    assert shown == "Answer: 42 "
    assert stream.stopped
    assert stream.flush() == ""


def test_text_that_only_looks_like_a_stop_start_is_released() -> None:
    stream = TextStream(("END",))
    shown = stream.feed(b"The E") + stream.feed(b"nglish")
    assert shown + stream.flush() == "The English"
    assert not stream.stopped
