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
def playwright() -> Iterator[object]:
    """One Playwright for the module (a second one cannot run beside it)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[object]:  # type: ignore[no-untyped-def]
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
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
                        "knowledge": True, "monitor": True, "recommend": True}
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


def test_monitor_page_charts_each_sentiment(page, server: RunningServer) -> None:  # type: ignore[no-untyped-def]
    texts = ["The app keeps crashing and I lost my money.", "Great service, thank you!",
             "The branch opens at nine."]
    items = [{"text": texts[n % 3], "time": f"2026-03-02T{10 + n // 6:02d}:{n % 6 * 10:02d}:00Z"}
             for n in range(18)]
    posted = httpx.post(f"{server.url}/api/monitor/items", json={"items": items}, timeout=120)
    assert posted.status_code == 201, posted.text
    page.click(".tabs button[data-view=monitor]")
    # attached, not "visible": a flat line has no height
    page.wait_for_selector("#monitor-chart svg polyline", state="attached")
    lines = page.locator("#monitor-chart svg polyline")
    assert sorted(lines.nth(i).get_attribute("data-series") for i in range(lines.count())) == [
        "Negative", "Neutral", "Positive"]
    assert page.locator("#monitor-chart svg circle").count() == 3 * 3  # three hourly buckets
    assert page.input_value("#monitor-topic") == "general"
    assert page.locator("#alert-table tbody tr").count() >= 1  # a row, or "No alerts."


def test_for_you_lists_recommendations_and_a_like_changes_them(  # type: ignore[no-untyped-def]
        page, server: RunningServer) -> None:
    from tests.recommend.data import catalogue

    items = [{"id": i.id, "title": i.title, "text": i.text, "attributes": i.attributes}
             for i in catalogue()]
    assert httpx.post(f"{server.url}/api/recommend/items", json={"items": items},
                      timeout=120).status_code == 201
    page.click(".tabs button[data-view=recommend]")
    page.wait_for_selector("#recommend-list li .reactions")
    assert page.locator("#recommend-list li").count() == 10
    first = page.locator("#recommend-list li").first
    liked = first.get_attribute("data-item")
    first.locator(".react-like").click()
    page.wait_for_function(
        "item => document.querySelectorAll('#recommend-list li .reactions').length === 10 && "
        "![...document.querySelectorAll('#recommend-list li')].some(li => li.dataset.item === item)",
        arg=liked)
    events = httpx.get(f"{server.url}/api/recommend/events").json()
    assert [(e["item"], e["kind"]) for e in events] == [(liked, "like")]
    liked_title = next(i.title for i in catalogue() if i.id == liked)
    assert f"because you liked {liked_title}" in page.inner_text("#recommend-list")


def test_phone_width(browser, server: RunningServer) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(server.url)
    _ask(page, "Hello!")
    for view in ("chat", "learning", "knowledge", "monitor", "recommend"):
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


# -- speech and images: the microphone, image upload and play controls ---------------------

QUESTION = "What time do you open on Saturday?"
RECEIPT = "CORNER CAFE\nCoffee 3.50\nMuffin 2.75\nTOTAL 6.25"


@pytest.fixture(scope="module")
def voice_browser(playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """Chromium whose microphone hears a question that espeak-ng said (in a loop)."""
    from tests.media.conftest import spoken

    wav = tmp_path_factory.mktemp("voice") / "question.wav"
    wav.write_bytes(spoken(QUESTION))
    fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*ARGS, *fake])
    yield chromium
    chromium.close()


def test_the_microphone_button_sends_what_was_said(  # type: ignore[no-untyped-def]
        voice_browser, server: RunningServer, assistant: Assistant) -> None:
    from tests.media.conftest import words

    context = voice_browser.new_context(permissions=["microphone"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.click("#mic")
    page.wait_for_selector("#mic[aria-pressed=true]")
    page.wait_for_timeout(3500)  # the question takes about two seconds to say
    with page.expect_response("**/api/chat", timeout=120_000) as heard:
        page.click("#mic")
    assert heard.value.status == 200
    assert heard.value.request.post_data_json["audio"].startswith("data:audio/")
    page.wait_for_selector(".msg.assistant:last-child .actions", timeout=120_000)
    said = page.inner_text(".msg.user")
    assert {"open", "saturday"} <= words(said), said  # the transcript became the message
    [item] = assistant.parts.sessions.list("local")
    user_turns = [t for t in assistant.parts.sessions.turns(item.session) if t.role == "user"]
    assert [t.content for t in user_turns] == [said]  # and was stored as the turn
    reply = heard.value.json()
    assert said == reply["user_text"]  # the transcript shown is the one stored
    trace = httpx.get(f"{server.url}/api/turns/{reply['user_turn_id']}").json()["trace"]
    assert trace["audio"]["language"] == "en"  # with its audio record
    page.wait_for_selector(".msg.assistant:last-child audio")  # answered in speech too, a WAV
    assert page.get_attribute(".msg.assistant:last-child audio", "src").startswith(
        "data:audio/wav;base64,")
    context.close()
    assert not errors


def test_an_uploaded_image_is_read_for_its_answer(page, server: RunningServer) -> None:  # type: ignore[no-untyped-def]
    from tests.media.conftest import rendered

    page.set_input_files("#image-input", files=[{
        "name": "receipt.png", "mimeType": "image/png", "buffer": rendered(RECEIPT)}])
    page.wait_for_selector("#attachments img")
    page.fill("#input", "What is the total on this receipt?")
    with page.expect_request("**/api/chat") as sent:
        page.press("#input", "Enter")
    body = sent.value.post_data_json
    assert [u[:22] for u in body["images"]] == ["data:image/png;base64,"]
    page.wait_for_selector(".msg.assistant:last-child .actions", timeout=120_000)
    assert page.is_hidden("#attachments")  # the image went with that message only
    assert page.inner_text(".msg.user").endswith("[image 1]")
    turn_id = page.get_attribute(".msg.assistant:last-child", "data-turn-id")
    trace = httpx.get(f"{server.url}/api/turns/{turn_id}").json()["trace"]
    [image] = [e for e in trace["context"]["evidence"] if e["kind"] == "image"]
    assert "TOTAL 6.25" in image["text"]
    page.click(".msg.assistant:last-child .why")
    page.wait_for_selector("#why-body li:has-text('image:1')")


def test_play_speaks_an_answer(page) -> None:  # type: ignore[no-untyped-def]
    _ask(page, "Hello!")
    with page.expect_response("**/v1/audio/speech", timeout=60_000) as speech:
        page.click(".msg.assistant:last-child .play")
    assert speech.value.status == 200
    assert speech.value.headers["content-type"] == "audio/wav"
    page.wait_for_selector(".msg.assistant:last-child audio")
    assert page.get_attribute(".msg.assistant:last-child audio", "src").startswith("blob:")
