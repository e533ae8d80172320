"""Rasa custom actions on a real action server: rasa-sdk (``python -m rasa_sdk``, in the
environment ``make install`` makes for it, .venv-rasa-sdk) started on loopback with an
``actions.py`` written as Rasa users write theirs, and called by dialoop's client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialoop.dialogue.domain import load_domain, load_scripts
from dialoop.engine.embedding import Embedder
from dialoop.errors import ToolError
from dialoop.interop.rasa import import_rasa
from dialoop.interop.rasa_actions import ActionServer
from tests.fakes import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = Path(os.environ.get("DIALOOP_RASA_SDK_PYTHON",
                                  ROOT / ".venv-rasa-sdk" / "bin" / "python"))
SHARED = ROOT.parent / "shared" / "data" / "rasa"

# Custom actions as a Rasa project's actions.py has them. The helpdesk bot's own
# actions.py is not in ../shared; these two stand in for its hand-off actions (they
# answer as that bot's domain says: the options, then the hand-off or why there is none).
ACTIONS = '''
from rasa_sdk import Action
from rasa_sdk.events import SlotSet


class ActionBook(Action):
    def name(self):
        return "action_book"

    def run(self, dispatcher, tracker, domain):
        n = len(domain.get("responses", {}))
        dispatcher.utter_message(text=f"Table for {tracker.get_slot('guests')} ({n} responses).")
        dispatcher.utter_message(response="utter_happy")
        return [SlotSet("note", "ok")]


class ActionHandoffOptions(Action):
    def name(self):
        return "action_handoff_options"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="I can hand you over to a person at our help desk.")
        return []


class ActionHandoff(Action):
    def name(self):
        return "action_handoff"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(response="utter_no_handoff")
        return [SlotSet("handoff_to", None)]
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The webhook URL of a rasa-sdk action server running ACTIONS."""
    if not SDK_PYTHON.is_file():
        pytest.fail(f"No rasa-sdk environment at {SDK_PYTHON}: `make install` makes it "
                    "(or set DIALOOP_RASA_SDK_PYTHON to a python with rasa-sdk).")
    folder = tmp_path_factory.mktemp("rasa-actions")
    (folder / "actions.py").write_text(ACTIONS)
    port = _free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([str(SDK_PYTHON), "-m", "rasa_sdk", "--actions", "actions",
                               "-p", str(port)],  # it listens on every interface
                              cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.stderr.write((folder / "server.log").read_text())
                pytest.fail("the rasa-sdk action server did not start (its log is above)")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_a_custom_action_runs_on_the_rasa_sdk_server(action_server: str,
                                                     tmp_path: Path) -> None:
    domain_file = tmp_path / "rasa_domain.json"
    domain_file.write_text(json.dumps({"responses": {"utter_happy": [{"text": "Great!"}]}}))
    result = ActionServer(action_server, domain_file).action("action_book")(guests=4)
    # the slots and the domain reached the action; its named response is rendered here
    assert result["text"] == "Table for 4 (1 responses).\nGreat!"
    assert result["events"][0]["name"] == "note" and result["slots"] == {"note": "ok"}
    with pytest.raises(ToolError, match="no action 'action_nope'"):
        ActionServer(action_server).run("action_nope", {})
    stopped = f"http://127.0.0.1:{_free_port()}/webhook"  # nothing listens there
    with pytest.raises(ToolError, match="rasa run actions"):
        ActionServer(stopped).run("action_book", {})


@pytest.mark.skipif(not (SHARED / "helpdesk-assistant").is_dir(),
                    reason="../shared/data/rasa (the public Rasa bots) is not beside the project")
def test_the_helpdesk_bot_passes_its_test_stories_with_its_action_server(
    action_server: str, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialoop.dialogue.intent import IntentClassifier
    from dialoop.eval.dialogue import run_dialogues

    monkeypatch.setenv("RASA_ACTION_ENDPOINT", action_server)  # read by the converted actions
    import_rasa(SHARED / "helpdesk-assistant", tmp_path / "out")
    domain = load_domain(tmp_path / "out" / "domain.yaml")
    scripts = load_scripts(tmp_path / "out" / "tests.yaml", domain)
    report = run_dialogues(domain, scripts, engine=FakeEngine(), policy="rule",
                           classifier=IntentClassifier(domain, embedder))
    failed = [d.name for d in report.dialogues if not d.success]
    assert report.task_success >= 0.90 and report.action_accuracy >= 0.95, failed
    assert not [name for name in failed if "handoff" in name]
