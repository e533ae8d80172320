"""A turn's own evidence (its images' text) and its audio: given to that turn alone."""

from __future__ import annotations

import pytest

from dialoop.assistant import Assistant, ToolResult
from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence
from dialoop.media.speech import Transcript

RECEIPT = Evidence("image", "Text read from image 1 (by OCR, confidence 0.95):\nTOTAL 6.25",
                   "image:1", 0.95)


def _system(reply) -> str:  # type: ignore[no-untyped-def]
    return next((m["content"] for m in reply.prompt.messages if m["role"] == "system"), "")


def test_the_evidence_reaches_its_turn_and_its_trace(bot: Assistant) -> None:
    reply = bot.ask("What is the total? [image 1]", session="s", evidence=[RECEIPT])
    assert "TOTAL 6.25" in _system(reply)
    cited = [e for e in reply.trace.context["evidence"] if e["kind"] == "image"]
    assert [e["source"] for e in cited] == ["image:1"]
    assert [e.source for e in reply.trace.dialogue.evidence if e.kind == "image"] == ["image:1"]


def test_the_evidence_never_reaches_another_turn_or_user(bot: Assistant) -> None:
    bot.ask("What is the total? [image 1]", session="s", user="ann", evidence=[RECEIPT])
    again = bot.ask("What is the total? [image 1]", session="s", user="ann")
    other = bot.ask("What is the total? [image 1]", session="t", user="bob")
    for reply in (again, other):
        assert "TOTAL 6.25" not in _system(reply)
        assert not [e for e in reply.trace.context.get("evidence", []) if e["kind"] == "image"]
    assert bot.manager.evidence == []  # nothing was left with the dialogue manager


def test_tool_results_carry_no_images_or_audio(bot: Assistant) -> None:
    with pytest.raises(InvalidInputError, match="belong to a user message"):
        bot.stream(None, results=[ToolResult("call_1", "42")], evidence=[RECEIPT])


def test_a_spoken_message_records_its_audio_in_the_user_turns_trace(bot: Assistant) -> None:
    heard = Transcript("When do you open?", "en", 0.83456, 1.234)
    reply = bot.ask(heard.text, session="s", spoken=heard)
    turns = bot.parts.sessions.turns(bot.session("s"))
    [user] = [t for t in turns if t.id == reply.user_turn_id]
    assert user.content == "When do you open?"
    assert user.trace == {"audio": {"language": "en", "confidence": 0.8346, "seconds": 1.23}}
    typed = bot.ask("And on Sunday?", session="s")
    [user] = [t for t in bot.parts.sessions.turns(bot.session("s")) if t.id == typed.user_turn_id]
    assert not (user.trace or {}).get("audio")


# -- in the dialogue manager ---------------------------------------------------------------


def test_a_graph_decline_does_not_hide_what_the_image_says() -> None:
    """The graph knows nothing of this receipt and would say "I don't know"; the turn's
    own evidence may hold the answer, so the model reads it instead."""
    from dialoop.dialogue.domain import general_domain
    from dialoop.dialogue.manager import DialogueManager
    from tests.dialogue.test_precedence import Knowledge
    from tests.fakes import FakeEngine

    graph = Knowledge("I don't know: my knowledge base has no \"total\" for this receipt.",
                      declined=True)
    manager = DialogueManager(general_domain(), engine=FakeEngine(), grounding=graph)
    p = manager.plan("What is the total on this receipt? [image 1]", user="ann",
                     evidence=[RECEIPT])
    assert p.text is None and p.trace.decided_by == "model" and RECEIPT in p.evidence
    p = manager.plan("What is the total on this receipt?", user="ann")  # no image: it stands
    assert p.trace.decided_by == "knowledge" and p.text.startswith("I don't know")


def test_several_requests_in_one_message_cite_the_image_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import textwrap

    from dialoop.dialogue.domain import load_domain
    from dialoop.dialogue.manager import DialogueManager
    from tests.fakes import ScriptedEngine

    (tmp_path / "domain.yaml").write_text(textwrap.dedent("""\
        name: desk
        understanding: {confidence_threshold: 0.5, llm_fallback: false}
        intents:
          weather: {examples: [what's the weather like, will it rain today, is it sunny,
                               how cold is it outside, weather forecast please]}
          joke: {examples: [tell me a joke, make me laugh, say something funny,
                            do you know any jokes, I want to hear a joke]}
        """))
    manager = DialogueManager(load_domain(tmp_path / "domain.yaml"),
                              engine=ScriptedEngine(lambda prompt, adapter: "x"))
    p = manager.plan("Tell me a joke please. What's the weather like?", user="ann", home=tmp_path,
                     evidence=[RECEIPT])
    assert p.trace.decided_by == "requests" and len(p.trace.requests) == 2
    assert p.text is None  # the model answers both, from one evidence block
    assert [e for e in p.evidence if e.source == "image:1"] == [RECEIPT]
