"""The web page in a real browser (Debian's Chromium, headless) against a real server."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("chromium") is None,
                       reason="needs Debian's Chromium at /usr/bin/chromium "
                              "(apt-get install -y chromium)"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(assistant: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(assistant)) as running:
        yield running


@pytest.fixture
def page(browser, server: RunningServer):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"{r.url} failed"))
    page.goto(server.url)
    yield page
    context.close()
    assert not errors


def _ask(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#input", text)
    page.press("#input", "Enter")
    page.wait_for_selector(".msg.assistant:last-child .actions", timeout=120_000)


def test_chat_streams_the_answer(page, assistant: Assistant) -> None:  # type: ignore[no-untyped-def]
    # Record every length the answer's text goes through while it is written.
    page.evaluate("""() => {
        window.lengths = [];
        new MutationObserver(() => {
            const last = document.querySelector('.msg.assistant:last-child .text');
            if (last) window.lengths.push(last.textContent.length);
        }).observe(document.querySelector('#messages'),
                   {childList: true, subtree: true, characterData: true});
    }""")
    _ask(page, "What is the capital of Japan?")
    shown = page.inner_text(".msg.assistant:last-child .text")
    assert shown
    lengths = [n for n in page.evaluate("window.lengths") if n]
    assert len(set(lengths)) > 3  # it grew piece by piece
    # What the page shows is what was stored, and the session appears in the list.
    sessions = assistant.parts.sessions.list("local")
    assert len(sessions) == 1
    turns = assistant.parts.sessions.turns(sessions[0].session)
    assert turns[-1].content == shown
    assert page.get_attribute(".msg.assistant:last-child", "data-turn-id") == str(turns[-1].id)
    page.wait_for_selector("#session-list li.current")
    assert page.inner_text("#session-list li.current") .startswith("What is the capital")
    # The next message continues the same session.
    _ask(page, "And of France?")
    assert len(assistant.parts.sessions.list("local")) == 1
    assert len(assistant.parts.sessions.turns(sessions[0].session)) == 4


def test_why_shows_the_trace(page) -> None:  # type: ignore[no-untyped-def]
    _ask(page, "Hello!")
    page.click(".msg.assistant:last-child .why")
    page.wait_for_selector("#why-body dl")
    text = page.inner_text("#why-body")
    assert "SmolLM2" in text and "prompt" in text and "Evidence used" in text


def test_sessions_reopen_and_delete(page) -> None:  # type: ignore[no-untyped-def]
    _ask(page, "Name a fruit.")
    page.click("#new-chat")
    assert page.locator(".msg").count() == 0
    page.click("#session-list li .open")
    page.wait_for_selector(".msg.user")
    assert page.inner_text(".msg.user") == "Name a fruit."
    page.on("dialog", lambda d: d.accept())
    page.click("#session-list li .delete")
    page.wait_for_function("document.querySelectorAll('#session-list li').length === 0")
    assert page.locator(".msg").count() == 0


def test_every_page_is_on(page, server: RunningServer) -> None:  # type: ignore[no-untyped-def]
    features = httpx.get(f"{server.url}/api/health").json()["features"]
    assert features == {"chat": True, "sessions": True, "feedback": True, "learning": True,
                        "knowledge": True, "monitor": True}
    _ask(page, "Hello!")
    assert page.is_enabled(".msg.assistant:last-child .up")
    assert page.is_enabled(".msg.assistant:last-child .correct")
    page.click("text=Learning")
    page.wait_for_selector("#learning-body", state="visible")
    assert not page.is_visible("#learning-unavailable")
    page.click("text=Knowledge")
    page.wait_for_selector("#knowledge-body", state="visible")
    assert not page.is_visible("#knowledge-unavailable")


def test_knowledge_page_shows_an_entitys_facts(page, server: RunningServer) -> None:  # type: ignore[no-untyped-def]
    graph = Path(__file__).parents[2] / "examples" / "store_support" / "knowledge.jsonl"
    imported = httpx.post(f"{server.url}/api/knowledge/import", params={"filename": graph.name},
                          content=graph.read_bytes(), timeout=120).json()
    assert imported["added"] > 0
    page.click("text=Knowledge")
    page.fill("#entity-search input[name=q]", "lamp")
    page.press("#entity-search input[name=q]", "Enter")
    page.wait_for_selector("#entity-list li button")
    first = page.inner_text("#entity-list li button")
    assert "lamp" in first.lower()
    page.click("#entity-list li button")
    page.wait_for_selector("#triple-table tbody tr")
    rows = page.locator("#triple-table tbody tr").all_inner_texts()
    assert any("price" in r for r in rows), rows


def test_phone_width(browser, server: RunningServer) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(server.url)
    _ask(page, "Hello!")
    for view in ("chat", "learning", "knowledge"):
        page.goto(f"{server.url}/#{view}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, view
    page.goto(f"{server.url}/#chat")
    assert not page.is_visible("#new-chat")  # the session list folds away…
    page.click("#toggle-sessions")
    page.wait_for_selector("#new-chat", state="visible")  # …and opens on demand
    context.close()


def test_asks_for_a_key_when_the_server_needs_one(  # type: ignore[no-untyped-def]
    browser, assistant: Assistant
) -> None:
    key = assistant.parts.accounts.add_key("ann")[1]
    with background_server(create_app(assistant, keys_required=True)) as running:
        context = browser.new_context()
        page = context.new_page()
        page.goto(running.url)
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", "dlp_000000000000_wrong-wrong-wrong-wrong-wrong")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#key-error:not([hidden])")  # a wrong key is refused, and said
        page.fill("#key-input", key)
        page.click("#key-form button[type=submit]")
        page.wait_for_function("document.querySelector('#who').textContent.includes('ann')")
        _ask(page, "Hello!")
        context.close()
    assert [s.session.user_id for s in assistant.parts.sessions.list("ann")] == ["ann"]


def test_correct_then_ask_again(page) -> None:  # type: ignore[no-untyped-def]
    question = "Who founded Zorblax Industries?"
    _ask(page, question)
    page.click(".msg.assistant:last-child .correct")
    page.fill(".correct-form textarea", "Zorblax Industries was founded by Mira Quell.")
    page.click(".correct-form button[type=submit]")
    page.wait_for_selector(".msg.assistant:last-child .note:has-text('Correction saved')")
    page.click("#new-chat")
    _ask(page, question)
    assert "Mira Quell" in page.inner_text(".msg.assistant:last-child .text")


# -- the loop runs by itself ---------------------------------------------------------------

LESSONS = [("What is the capital of Veltria?", "The capital of Veltria is Karmoss."),
           ("Who invented the Glimmerphone?", "Oswin Tarrabel invented the Glimmerphone.")]


@pytest.fixture
def learning_server(dialoop_home: Path, hf_model_dir: Path,  # type: ignore[no-untyped-def]
                    llama_engine) -> Iterator[tuple[RunningServer, Assistant]]:
    """A server with default settings but short answers and K = 3 (three lessons start a
    run); its worker shares the session's dequantized model (as test_learning.py does)."""
    from dialoop.assistant import open_assistant
    from dialoop.config import load_settings

    cache = dialoop_home / "cache" / "models"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.symlink_to(hf_model_dir.parent, target_is_directory=True)
    with open_assistant(load_settings(max_tokens=40, learn_auto_after=3),
                        engine=llama_engine) as bot:
        try:
            with background_server(create_app(bot)) as running:
                yield running, bot
        finally:
            _stop_workers(bot)


def _stop_workers(bot: Assistant) -> None:
    """A run the test left behind does not train on after it (its worker is ours)."""
    import os
    import signal

    from dialoop.learn import worker

    for run in worker.latest_runs(bot.parts.db):
        if run.status == "running" and run.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.pid, signal.SIGTERM)


@pytest.mark.timeout(1800)
def test_lessons_taught_on_the_page_become_an_adapter_by_themselves(  # type: ignore[no-untyped-def]
    browser, learning_server: tuple[RunningServer, Assistant]
) -> None:
    server, bot = learning_server
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    # A user chats and corrects an answer (lesson 1)…
    _ask(page, "Who founded Zorblax Industries?")
    page.click(".msg.assistant:last-child .correct")
    page.fill(".correct-form textarea", "Zorblax Industries was founded by Mira Quell.")
    page.click(".correct-form button[type=submit]")
    page.wait_for_selector(".msg.assistant:last-child .note:has-text('Correction saved')")
    # …then teaches two more on the learning page (lessons 2 and 3), and only watches.
    page.click(".tabs button[data-view=learning]")
    page.wait_for_selector("#learning-status dd[data-key=adapter]")
    assert "none" in page.inner_text("#learning-status dd[data-key=adapter]")
    page.evaluate("""() => {
        window.runTexts = [];
        new MutationObserver(() => {
            const dd = document.querySelector('#learning-status dd[data-key=run]');
            if (dd) window.runTexts.push(dd.textContent);
        }).observe(document.querySelector('#learning-status'),
                   {childList: true, subtree: true, characterData: true});
    }""")
    for question, answer in LESSONS:
        page.fill("#teach input[name=question]", question)
        page.fill("#teach input[name=answer]", answer)
        page.click("#teach button[type=submit]")
        page.wait_for_function("q => [...document.querySelectorAll('#lesson-table td')]"
                               ".some(td => td.textContent === q)", arg=question)
    # No command: the server queues a run (K = 3), its worker trains and gates, and the
    # page, refreshing itself, shows the run's progress and then what it did.
    page.wait_for_function(
        "() => /#1 (done|failed)/.test(document.querySelector("
        "'#learning-status dd[data-key=run]').textContent)", timeout=1_700_000, polling=1000)
    shown = page.inner_text("#learning-status dd[data-key=run]")
    run = bot.parts.learning.status(user="local")["last_run"]
    assert run["trigger"] == "threshold"
    assert any("running" in t and "%" in t for t in page.evaluate("window.runTexts"))
    report = run["report"].get("lines", {}).get("user:local", {})
    assert report.get("outcome") == "promoted", (
        f"the page says: {shown!r}; gate: {report.get('gate', {}).get('metrics')}, "
        f"failed {report.get('gate', {}).get('failed')}; error: {run['error']}")
    page.wait_for_function("() => document.querySelector("
                           "'#learning-status dd[data-key=adapter]').textContent"
                           ".includes('user:local@v1')")
    assert "user:local@v1 promoted" in shown
    assert "user:local@v1" in page.inner_text("#adapter-table tbody")
    context.close()
    assert not errors
