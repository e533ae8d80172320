"""Summaries keep long conversations whole: what falls out of the window is summarised once
per dropped block, shown as a labelled evidence item of the system message (never as the
user's words), and cited in the trace; ``drop`` mode is as before.

The model is scripted (a summary request gets a canned summary): what is tested here is
where summaries go and how often they are made, whatever a model would write.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import load_settings
from dialoop.dialogue.context import DROP_BLOCK, build_prompt
from dialoop.dialogue.summary import ExtractiveSummariser, Summaries, Summary, salience
from dialoop.engine import Message
from dialoop.errors import ConfigError
from tests.fakes import FakeEngine, ScriptedEngine

WINDOW = 200  # words: with the default reserve, about a dozen exchanges fit
LABEL = "Summary of the earlier conversation (turns 1–"


class SummaryCounter:
    """A scripted model: summary requests get "SUMMARY-<n>", counted; others get "ok"."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, prompt: str, adapter: str | None) -> str:
        if prompt.startswith("Summarize this conversation"):
            self.requests.append(prompt)
            return f"SUMMARY-{len(self.requests)} the user is Ann from Ghent."
        return "ok, noted."


@pytest.fixture
def counter() -> SummaryCounter:
    return SummaryCounter()


def _bot(counter: SummaryCounter, overflow: str) -> Assistant:
    engine = ScriptedEngine(counter)
    engine.context_window = WINDOW
    settings = load_settings(context_overflow=overflow, context_summarizer="model",
                             learn_memory=False, knowledge=False)
    return open_assistant(settings, engine=engine)


@pytest.fixture
def summarizing(counter: SummaryCounter) -> Iterator[Assistant]:
    with _bot(counter, "summarize") as bot:
        yield bot


def _talk(bot: Assistant, turns: int) -> list:
    session = bot.session("long")
    return [bot.ask(f"Tell me about topic number {i} please.", session=session)
            for i in range(1, turns + 1)]


def test_the_summary_goes_into_the_system_message_labelled_never_into_a_user_message(
        summarizing: Assistant) -> None:
    replies = _talk(summarizing, 30)
    last = replies[-1].prompt
    assert last.dropped > 0  # the window is too small for 30 exchanges
    system, *rest = last.messages
    assert system["role"] == "system"
    assert f"[1] {LABEL}{last.dropped // 2}):" in system["content"]
    assert "SUMMARY-" in system["content"]
    assert not any("SUMMARY-" in m["content"] or LABEL in m["content"] for m in rest)
    assert rest[-1] == {"role": "user", "content": "Tell me about topic number 30 please."}
    assert last.tokens <= WINDOW - WINDOW // 2  # the summary fits in the budget too


def test_a_summary_is_made_once_per_dropped_block_and_reused_on_later_turns(
        summarizing: Assistant, counter: SummaryCounter) -> None:
    replies = _talk(summarizing, 40)
    drops = [r.prompt.dropped for r in replies]
    cut_points = sorted({d for d in drops if d})
    assert len(cut_points) >= 3
    assert all(d % (2 * DROP_BLOCK) == 0 for d in cut_points)
    assert len(counter.requests) == len(cut_points)  # one model call per dropped block
    ids = {d: {r.prompt.summary.id for r in replies if r.prompt.dropped == d}  # type: ignore[union-attr]
           for d in cut_points}
    assert all(len(same) == 1 for same in ids.values())  # the same summary, turn after turn
    # Incremental: each summary is made from the one before and the newly dropped block.
    assert "Summary of what was said before" not in counter.requests[0]
    for n, request in enumerate(counter.requests[1:], start=1):
        assert f"SUMMARY-{n} the user is Ann" in request
    # The summary stays put between cut points, so the system message (the prefix) does.
    systems = [r.prompt.messages[0]["content"] for r in replies if r.prompt.dropped]
    assert len(set(systems)) == len(cut_points)


def test_the_trace_names_the_summary_and_the_turns_it_covers(summarizing: Assistant) -> None:
    replies = _talk(summarizing, 30)
    sessions = summarizing.parts.sessions
    stored = sessions.turns(sessions.get("long", "local"))[-1]
    context = stored.trace["context"]
    dropped = replies[-1].prompt.dropped
    summary = context["summary"]
    assert summary["turns"] == [1, dropped // 2] and summary["messages"] == dropped
    assert summary["kind"] == "model" and summary["text"].startswith("SUMMARY-")
    assert context["evidence"][0]["source"] == f"summary:{summary['id']}"
    assert context["evidence"][0]["kind"] == "summary"
    assert Summaries(summarizing.parts.db).latest(replies[-1].session_id).id == summary["id"]


def test_drop_mode_is_unchanged(counter: SummaryCounter) -> None:
    with _bot(counter, "drop") as bot:
        replies = _talk(bot, 30)
        last = replies[-1]
        history: list[Message] = []
        for i in range(1, 30):
            history += [{"role": "user", "content": f"Tell me about topic number {i} please."},
                        {"role": "assistant", "content": "ok, noted."}]
        plain = build_prompt(bot.engine, system=None, history=history,
                             message="Tell me about topic number 30 please.",
                             reserve=bot.settings.max_tokens)
    assert counter.requests == []  # no summary is ever asked for
    assert last.prompt.messages == plain.messages and last.prompt.dropped == plain.dropped > 0
    assert last.prompt.summary is None and "summary" not in last.trace.context


def test_a_summary_that_pushes_out_another_block_covers_what_is_dropped() -> None:
    engine = FakeEngine(context_window=160)
    history: list[Message] = []
    for i in range(21):  # three blocks drop, and less room is left than the summary takes
        history += [{"role": "user", "content": f"question {i} " + "word " * 4},
                    {"role": "assistant", "content": f"answer {i} " + "word " * 4}]
    asked: list[int] = []

    def summarize(n: int, limit: int) -> Summary:
        asked.append(n)
        return Summary(len(asked), "s", n, n // 2, "model", "fact " * (limit // 2), 0.0)

    plain = build_prompt(engine, system="Be brief.", history=history, message="next?",
                         reserve=32)
    prompt = build_prompt(engine, system="Be brief.", history=history, message="next?",
                          reserve=32, summarize=summarize)
    assert asked[0] == plain.dropped and len(asked) >= 2  # the summary took a block's room
    assert prompt.dropped == asked[-1] > plain.dropped
    assert prompt.summary is not None and prompt.summary.covers == prompt.dropped
    assert prompt.messages[1]["content"] == history[prompt.dropped]["content"]
    assert prompt.tokens <= 160 - 32


def test_an_empty_summary_leaves_the_prompt_as_in_drop_mode() -> None:
    engine = FakeEngine(context_window=160)
    history: list[Message] = [{"role": r, "content": f"{r} says " + "word " * 8}
                              for _ in range(20) for r in ("user", "assistant")]
    plain = build_prompt(engine, system=None, history=history, message="next?", reserve=32)
    prompt = build_prompt(engine, system=None, history=history, message="next?", reserve=32,
                          summarize=lambda n, limit: Summary(1, "s", n, n // 2, "extractive",
                                                             "", 0.0))
    assert prompt == plain


def test_a_system_prompt_that_fills_its_room_leaves_no_summary_half_cut() -> None:
    engine = FakeEngine(context_window=160)
    history: list[Message] = [{"role": r, "content": f"{r} says " + "word " * 8}
                              for _ in range(20) for r in ("user", "assistant")]
    long_system = "Rule. " * 60  # beyond a quarter of the budget: it is cut in the middle
    prompt = build_prompt(engine, system=long_system, history=history, message="next?",
                          reserve=32, summarize=lambda n, limit: Summary(
                              1, "s", n, n // 2, "model", "SUMMARY " * limit, 0.0))
    assert prompt.summary is None and prompt.dropped > 0  # dropped, as in drop mode
    assert "SUMMARY" not in prompt.messages[0]["content"]


FACTS = ["My name is Marisol Quint.", "My order number is A-48213.", "I live in Lisbon.",
         "I prefer window seats.", "My appointment is on March 14."]


def _scripted_conversation() -> list[Message]:
    """Facts stated among chit-chat and questions, as a user would."""
    said = [f"Hello there. {FACTS[0]}", "Can you tell me a fun fact about octopuses?",
            f"{FACTS[1]} Where is it?", "What is the tallest mountain?",
            f"Thanks. {FACTS[2]}", "ok", "Tell me about the history of tea.",
            f"By the way, {FACTS[3][0].lower()}{FACTS[3][1:]}", "Why is the sky blue?",
            FACTS[4], "Nice weather today, isn't it?", "How do bees make honey?"]
    out: list[Message] = []
    for text in said:
        out += [{"role": "user", "content": text},
                {"role": "assistant", "content": "The Moon is 384,400 km away, Ann."}]
    return out


def test_the_extractive_summary_keeps_the_facts_and_leaves_the_chit_chat() -> None:
    summarise = ExtractiveSummariser(FakeEngine().count_tokens)
    conversation = _scripted_conversation()
    text = summarise(None, conversation, 80)
    for fact in ("Marisol Quint", "A-48213", "Lisbon", "window seats", "March 14"):
        assert fact in text
    for chat in ("octopuses", "tallest mountain", "history of tea", "sky blue", "honey",
                 "384,400"):  # questions, and what the assistant said
        assert chat not in text
    assert all(line.startswith("User: ") for line in text.splitlines())
    # Incremental, block by block: the facts of the first blocks survive the later ones.
    previous = None
    for start in range(0, len(conversation), 2 * DROP_BLOCK):
        previous = summarise(previous, conversation[start:start + 2 * DROP_BLOCK], 80)
    assert previous == text
    # Over the limit, the least salient go first, and the limit holds.
    short = summarise(None, conversation, 24)
    assert len(short.split()) + len(short.splitlines()) <= 24
    assert "A-48213" in short and "March 14" in short


def test_salience_ranks_stated_facts_above_questions_and_remarks() -> None:
    assert min(map(salience, FACTS)) >= 3
    for remark in ("Can you tell me a fun fact about octopuses?", "ok", "Why is the sky blue?",
                   "I may be late.", "It rained all day."):
        assert salience(remark) < 3, remark


def test_deleting_a_session_deletes_its_summaries(summarizing: Assistant) -> None:
    replies = _talk(summarizing, 30)
    store = Summaries(summarizing.parts.db)
    assert store.latest(replies[-1].session_id) is not None
    summarizing.parts.sessions.delete("long", "local")
    assert store.latest(replies[-1].session_id) is None


def test_the_settings_come_from_the_environment_and_are_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_CONTEXT_OVERFLOW", "drop")
    monkeypatch.setenv("DIALOOP_CONTEXT_SUMMARIZER", "model")
    settings = load_settings()
    assert (settings.context_overflow, settings.context_summarizer) == ("drop", "model")
    monkeypatch.setenv("DIALOOP_CONTEXT_OVERFLOW", "forget")
    with pytest.raises(ConfigError, match="context_overflow"):
        load_settings()
