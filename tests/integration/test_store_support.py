"""store_support end to end: the real model, the real embedder, real SQLite files."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.assistant import Assistant, Reply, open_assistant
from dialoop.cli import cli
from dialoop.cli.chat import Repl
from dialoop.config import Settings
from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.engine.embedding import default_embedder
from dialoop.engine.llamacpp import LlamaCppEngine

STORE = Path(__file__).resolve().parents[2] / "examples" / "store_support"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store_domain() -> Domain:
    return load_domain(STORE / "domain.yaml")


@pytest.fixture(scope="module")
def store_classifier(store_domain: Domain) -> IntentClassifier:
    """Trained once for the module (a second or two), shared by every test's assistant."""
    return IntentClassifier(store_domain, default_embedder())


@pytest.fixture
def bot(settings: Settings, llama_engine: LlamaCppEngine, store_domain: Domain,
        store_classifier: IntentClassifier) -> Iterator[Assistant]:
    with open_assistant(settings, engine=llama_engine, domain=store_domain, policy="rule",
                        classifier=store_classifier) as bot:
        yield bot


def dialogue(bot: Assistant, reply: Reply) -> dict:
    """The stored dialogue trace of ``reply``'s turn."""
    session = bot.parts.sessions.get(reply.session_id, bot.settings.user)
    turn = next(t for t in bot.parts.sessions.turns(session) if t.id == reply.turn_id)
    return turn.trace["dialogue"]


def test_order_status_asks_for_the_number_then_calls_the_tool(bot: Assistant) -> None:
    session = bot.session("status")
    first = bot.ask("Where is my order?", session=session)
    assert first.text == bot.domain.spec.slots["order_number"].question
    trace = dialogue(bot, first)
    assert trace["intent"]["intent"] == "order_status"
    assert trace["action"] == "clarify:order_number" and trace["tool_calls"] == []
    assert trace["state_after"]["requested"] == "order_number"

    second = bot.ask("It's 5521", session=session)
    assert "shipped on 2025-03-10 with FedEx" in second.text
    trace = dialogue(bot, second)
    assert trace["understood"]["intent"] == "order_status" and trace["understood"]["continued"]
    assert [s["action"] for s in trace["steps"]] == ["call_tool:lookup_order", "answer"]
    call = trace["tool_calls"][0]
    assert call["arguments"] == {"order_number": 5521} and call["ok"]
    assert call["result"]["status"] == "shipped"
    assert trace["state_before"]["slots"] == {}
    assert trace["state_after"]["slots"] == {"order_number": 5521}


def test_a_correction_mid_dialogue_replaces_the_order_number(bot: Assistant) -> None:
    session = bot.session("correction")
    assert "delivered on 2025-03-04" in bot.ask("Where is order 5512?", session=session).text
    reply = bot.ask("no, order 5521, not 5512", session=session)
    assert "Order 5521 (Nimbus Toaster) shipped" in reply.text
    trace = dialogue(bot, reply)
    assert trace["understood"]["slot_updates"] == [
        {"slot": "order_number", "value": 5521, "replaces": 5512}]
    assert trace["tool_calls"][0]["arguments"] == {"order_number": 5521}


def test_an_out_of_scope_message_is_declined_without_acting(bot: Assistant) -> None:
    reply = bot.ask("Who won the chess world championship in 1972?")
    assert reply.text.startswith("Sorry, I can only help with Nimbus Home orders")
    trace = dialogue(bot, reply)
    assert trace["understood"]["out_of_domain"] and trace["intent"]["intent"] == "out_of_scope"
    assert trace["action"] == "answer" and trace["tool_calls"] == []


def test_a_tool_refusal_is_told_and_the_dialogue_goes_on(bot: Assistant) -> None:
    session = bot.session("refusal")
    reply = bot.ask("What's the status of order 1234?", session=session)
    assert reply.text == ("I'm sorry, I couldn't do that: There is no order 1234; please check "
                          "the number in your confirmation email.")
    call = dialogue(bot, reply)["tool_calls"][0]
    assert not call["ok"] and "no order 1234" in call["error"]
    assert "FedEx" in bot.ask("sorry, I meant 5521", session=session).text


def test_a_broken_tool_is_an_apology_and_a_logged_error_not_a_crash(
    bot: Assistant, caplog: pytest.LogCaptureFixture
) -> None:
    orders = bot.settings.home / "store_support" / "orders.db"
    orders.parent.mkdir(parents=True)
    orders.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="dialoop.agent.tools"):
        reply = bot.ask("Where is order 5521?")
    assert reply.text == ("I'm sorry, I couldn't do that: The lookup_order tool failed "
                          "unexpectedly; the error was logged.")
    assert reply.finish_reason == "stop"
    failure = next(r for r in caplog.records if r.message == "tool lookup_order failed")
    assert isinstance(failure.exc_info[1], sqlite3.DatabaseError)


def test_a_return_is_read_back_and_only_started_after_a_yes(bot: Assistant) -> None:
    session = bot.session("return")
    ask = bot.domain.spec.slots["email"].question
    assert bot.ask("I want to return order 8850, the blender is faulty", session=session).text \
        == ask
    readback = bot.ask("fay@example.com", session=session)
    assert readback.text.startswith("Just to check: you want to return order 8850 (damaged)")
    assert dialogue(bot, readback)["action"] == "clarify:confirm"
    assert dialogue(bot, readback)["tool_calls"] == []  # nothing is started before the yes
    done = bot.ask("yes", session=session)
    assert done.text.startswith("Done: return R")
    with sqlite3.connect(bot.settings.home / "store_support" / "orders.db") as db:
        assert db.execute("SELECT reason FROM returns WHERE order_number = 8850").fetchone() \
            == ("damaged",)


def test_hand_off_marks_the_session_for_a_person(bot: Assistant) -> None:
    session = bot.session("human")
    reply = bot.ask("I'd like to talk to a real person please", session=session)
    assert "a person will reply here" in reply.text
    assert bot.parts.sessions.get("human", bot.settings.user).status == "handoff"
    later = bot.ask("where is order 5521?", session=session)
    assert later.text == reply.text  # automated handling has ended
    assert dialogue(bot, later)["tool_calls"] == []


def test_why_and_dialoop_trace_show_intent_action_and_tool_result(
    bot: Assistant, capsys: pytest.CaptureFixture[str]
) -> None:
    session = bot.session("traced")
    bot.ask("Where is my order?", session=session)
    reply = bot.ask("It's 5521", session=session)

    result = CliRunner().invoke(cli, ["trace", "traced"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Turn {reply.turn_id}" in out
    assert "intent       order_status (carried on the current goal" in out
    assert "step 1       call_tool:lookup_order: rule 10" in out
    assert 'lookup_order({"order_number": 5521}) → {"order_number": 5521' in out
    assert "step 2       answer: rule 3: the tool has answered" in out
    assert "response     template:lookup_order" in out

    earlier = CliRunner().invoke(cli, ["trace", "traced", str(reply.user_turn_id - 2)])
    assert "clarify:order_number" in earlier.output and "lookup_order(" not in earlier.output

    Repl(bot, session).handle("/why")
    assert "call_tool:lookup_order" in capsys.readouterr().out
    missing = CliRunner().invoke(cli, ["trace", "traced", "999"])
    assert missing.exit_code != 0 and "no turn 999" in str(missing.exception)


def test_dialoop_chat_with_a_domain(dialoop_home: Path) -> None:
    result = CliRunner().invoke(
        cli, ["chat", "--domain", str(STORE / "domain.yaml")],
        input="Where is my order?\n6003\n/why\n/quit\n",
    )
    assert result.exit_code == 0, result.output
    assert "domain store_support" in result.output
    assert "What is your order number?" in result.output
    assert "Order 6003 (Cirrus Blender) is being prepared" in result.output
    assert "call_tool:lookup_order" in result.output  # /why


def test_a_bad_domain_file_fails_before_the_model_loads(tmp_path: Path) -> None:
    bad = tmp_path / "domain.yaml"
    bad.write_text("name: x\nintents:\n  a: {examples: [hi]}\nslots:\n  s: {type: colour}\n")
    result = CliRunner().invoke(cli, ["chat", "--domain", str(bad)], input="/quit\n")
    assert result.exit_code != 0
    assert f"{bad}:5: slots.s.type: Input should be" in str(result.exception)
    assert "Loading" not in result.output


def test_a_generated_answer_stopped_early_is_kept_with_its_trace(bot: Assistant) -> None:
    session = bot.session("greeting")
    stream = bot.stream("Hello there!", session=session)
    first = next(iter(stream))
    stream.close()
    turns = bot.parts.sessions.turns(session)
    assert [(t.role, t.status) for t in turns] == [("user", "complete"),
                                                    ("assistant", "cancelled")]
    assert turns[1].content == first
    trace = turns[1].trace["dialogue"]
    assert trace["intent"]["intent"] == "chit_chat" and trace["response"] == "generated"
