"""`dialoop import rasa`: a small Rasa 3 project of our own, converted and run.

The project is written here (never copied from a public bot): two intents answered
by rules, a story with two responses in one turn, a form, a custom action, NLU
annotations in both spellings, a synonym, a regex, a lookup table, and things dialoop
cannot convert (a checkpoint, an image, a session config), which must be reported
with their file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.dialogue.domain import load_domain, load_scripts
from dialoop.dialogue.manager import DialogueManager
from dialoop.engine.embedding import Embedder
from dialoop.errors import ConfigError
from dialoop.eval.dialogue import Scoreboard
from dialoop.interop.rasa import import_rasa
from dialoop.interop.rasa_files import parse_example
from tests.fakes import FakeEngine

DOMAIN = """\
version: "3.1"
intents:
  - greet
  - mood_unhappy
  - affirm
  - book_table
  - inform
entities:
  - cuisine
  - guests
slots:
  cuisine:
    type: text
    mappings:
    - type: from_entity
      entity: cuisine
  guests:
    type: float
    mappings:
    - type: from_entity
      entity: guests
  note:
    type: text
    mappings:
    - type: custom
responses:
  utter_greet:
  - text: "Hello!"
  - text: "Hi there!"
  utter_cheer_up:
  - text: "Here is a kitten."
    image: "https://example.com/kitten.jpg"
  utter_did_that_help:
  - text: "Did that help?"
  utter_happy:
  - text: "Great!"
  utter_ask_cuisine:
  - text: "Which cuisine?"
  utter_ask_guests:
  - text: "For how many?"
  utter_booked:
  - text: "Booked {cuisine} for {guests}."
forms:
  table_form:
    required_slots:
    - cuisine
    - guests
actions:
  - action_book
session_config:
  session_expiration_time: 60
"""

NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi
    - good morning
- intent: mood_unhappy
  examples: |
    - I am sad
    - my day was awful
    - I feel bad
- intent: affirm
  examples: |
    - yes
    - indeed
    - sure
- intent: book_table
  examples: |
    - book a table
    - I want a [thai](cuisine) restaurant
    - reserve a table for [4](guests) at a [Sichuan]{"entity": "cuisine", "value": "chinese"} place
- intent: inform
  examples: |
    - [italian](cuisine) please
    - [4](guests) people
    - [szechuan](cuisine:chinese) food
- synonym: chinese
  examples: |
    - chinese food
- regex: guests
  examples: |
    - \\b\\d{1,2}\\b
- lookup: cuisine
  examples: |
    - greek
"""

RULES = """\
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: start the form
  steps:
  - intent: book_table
  - action: table_form
  - active_loop: table_form
- rule: submit the form
  condition:
  - active_loop: table_form
  steps:
  - action: table_form
  - active_loop: null
  - action: action_book
  - action: utter_booked
"""

STORIES = """\
version: "3.1"
stories:
- story: sad
  steps:
  - intent: mood_unhappy
  - action: utter_cheer_up
  - action: utter_did_that_help
  - intent: affirm
  - action: utter_happy
- story: joined elsewhere
  steps:
  - checkpoint: somewhere
  - intent: greet
  - action: utter_greet
"""

TESTS = """\
stories:
- story: sad path
  steps:
  - user: |
      I am sad
    intent: mood_unhappy
  - action: utter_cheer_up
  - action: utter_did_that_help
  - user: |
      yes
    intent: affirm
  - action: utter_happy
- story: booking
  steps:
  - user: |
      book a table
    intent: book_table
  - action: table_form
  - active_loop: table_form
  - user: |
      [italian](cuisine) please
    intent: inform
  - action: table_form
- story: filled off-screen
  steps:
  - user: |
      book a table
    intent: book_table
  - action: table_form
  - active_loop: table_form
  - active_loop: null
  - action: utter_booked
  - user: |
      hello
    intent: greet
  - action: utter_greet
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "bot"
    (root / "data").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "domain.yml").write_text(DOMAIN)
    (root / "data" / "nlu.yml").write_text(NLU)
    (root / "data" / "rules.yml").write_text(RULES)
    (root / "data" / "stories.yml").write_text(STORIES)
    (root / "tests" / "test_stories.yml").write_text(TESTS)
    return root


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_both_annotation_spellings_give_the_plain_text_and_the_value() -> None:
    text, found = parse_example('table for [4](guests), [Sichuan]{"entity": "cuisine", '
                                '"value": "chinese"} or [szechuan](cuisine:chinese)')
    assert text == "table for 4, Sichuan or szechuan"
    assert found == [("guests", "4", "4"), ("cuisine", "chinese", "Sichuan"),
                     ("cuisine", "chinese", "szechuan")]


def test_the_converted_project_loads_and_keeps_what_the_bot_does(project: Path,
                                                                  tmp_path: Path) -> None:
    result = import_rasa(project, tmp_path / "out")
    domain = load_domain(tmp_path / "out" / "domain.yaml")
    spec = domain.spec
    assert spec.intents["book_table"].requires == ["cuisine", "guests"]
    assert "reserve a table for 4 at a Sichuan place" in spec.intents["book_table"].examples
    assert spec.slots["cuisine"].type == "enum"
    assert {"Sichuan", "szechuan", "chinese food"} <= set(spec.slots["cuisine"].values["chinese"])
    assert "greek" in spec.slots["cuisine"].values  # from the lookup table
    assert spec.slots["guests"].pattern == r"(?:\b\d{1,2}\b)"  # the regex
    assert spec.slots["cuisine"].question == "Which cuisine?"
    rules = {r.when.intent: r for r in spec.policy.rules if isinstance(r.when.intent, str)}
    assert rules["mood_unhappy"].respond == "utter_cheer_up+utter_did_that_help"
    assert rules["book_table"].action == "call_tool:action_book"  # once the form is full
    assert domain.render("utter_booked", slots={"cuisine": "thai", "guests": 2}) == \
        "Booked thai for 2."
    assert {domain.render("utter_greet", slots={}) for _ in range(40)} == {"Hello!", "Hi there!"}
    assert "action_book" in domain.tools and result.tools == ["action_book"]
    tests = load_scripts(tmp_path / "out" / "tests.yaml", domain)
    assert [t.actions for t in tests[0].turns] == [
        ["answer:utter_cheer_up+utter_did_that_help"], ["answer:utter_happy"]]
    assert [t.actions for t in tests[1].turns] == [["clarify"], ["clarify"]]
    assert tests[1].turns[1].user == "italian please"
    assert tests[1].turns[1].slots == {"cuisine": "italian"}


def test_what_cannot_be_converted_is_listed_with_file_and_line(project: Path,
                                                               tmp_path: Path) -> None:
    result = import_rasa(project, tmp_path / "out")
    skipped = [str(s) for s in result.skipped]
    stories_line = _line(STORIES, "checkpoint")
    assert f"data/stories.yml:{stories_line}: checkpoint 'somewhere': stories are not joined " \
           "at checkpoints" in skipped
    image = _line(DOMAIN, "Here is a kitten")
    assert any(s.startswith(f"domain.yml:{image}: response 'utter_cheer_up': image") for s in skipped)
    custom = _line(DOMAIN, "type: custom")
    assert any(s.startswith(f"domain.yml:{custom}: slot 'note': a custom mapping") for s in skipped)
    assert any(s.startswith(f"domain.yml:{_line(DOMAIN, 'session_expiration_time')}: session_config")
               for s in skipped)
    report = result.report.read_text()
    assert all(s in report for s in skipped)


def test_the_converted_bot_answers_with_the_rasa_responses(project: Path, tmp_path: Path,
                                                           embedder: Embedder) -> None:
    import_rasa(project, tmp_path / "out")
    domain = load_domain(tmp_path / "out" / "domain.yaml")
    manager = DialogueManager(domain, engine=FakeEngine(), embedder=embedder)
    turns: list[Any] = []
    board = Scoreboard(domain)
    script = load_scripts(tmp_path / "out" / "tests.yaml", domain)[0]
    said = []
    for turn in script.turns:
        plan = manager.plan(turn.user, user="ann", turns=turns)
        said.append((plan.text, plan.trace))
        turns = [_Answered(plan.state.to_dict())]
    assert said[0][0] == "Here is a kitten.\nDid that help?"
    assert board.add(script, said).success
    assert board.report("rule", 0).action_accuracy == 1.0


def test_a_form_asks_its_questions_and_an_informing_message_answers_them(
        project: Path, tmp_path: Path, embedder: Embedder) -> None:
    import_rasa(project, tmp_path / "out")
    domain = load_domain(tmp_path / "out" / "domain.yaml")
    manager = DialogueManager(domain, engine=FakeEngine(), embedder=embedder)
    first = manager.plan("book a table", user="ann")
    assert first.text == "Which cuisine?"
    # "inform" is another intent, but it only gives values: the form goes on.
    second = manager.plan("italian please", user="ann", turns=[_Answered(first.state.to_dict())])
    assert second.state.slots == {"cuisine": "italian"}
    assert second.text == "For how many?"


def test_a_test_story_that_fills_its_form_off_screen_ends_there(project: Path,
                                                                 tmp_path: Path) -> None:
    # Rasa has closed the form before "hello"; a live dialogue is still asking its question.
    result = import_rasa(project, tmp_path / "out")
    domain = load_domain(tmp_path / "out" / "domain.yaml")
    script = load_scripts(tmp_path / "out" / "tests.yaml", domain)[2]
    assert [(t.user, t.actions) for t in script.turns] == [("book a table", ["clarify"])]
    line = _line(TESTS, "story: filled off-screen") + 2  # its first user step
    assert f"tests/test_stories.yml:{line}: test story 'filled off-screen': the turns after " \
           "the form filled off-screen are left out" in result.report.read_text()


def test_the_cli_prints_what_it_could_not_convert(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["import", "rasa", str(project), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "data/stories.yml:" in result.output and "checkpoint" in result.output
    assert (out / "domain.yaml").is_file() and (out / "import_report.txt").is_file()


def test_a_folder_that_is_no_rasa_project_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no domain.yml"):
        import_rasa(tmp_path, tmp_path / "out")


class _Answered:
    """An assistant turn as the manager reads the state back from it."""

    role = "assistant"

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state


# -- the public bots in ../shared, when they are there -------------------------------------------

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "rasa"


@pytest.mark.skipif(not (SHARED / "initial_project").is_dir(),
                    reason="../shared/data/rasa (the public Rasa bots) is not beside the project")
def test_rasa_init_project_passes_its_own_test_stories(tmp_path: Path,
                                                       embedder: Embedder) -> None:
    from dialoop.dialogue.intent import IntentClassifier
    from dialoop.eval.dialogue import run_dialogues

    import_rasa(SHARED / "initial_project", tmp_path / "out")
    domain = load_domain(tmp_path / "out" / "domain.yaml")
    scripts = load_scripts(tmp_path / "out" / "tests.yaml", domain)
    classifier = IntentClassifier(domain, embedder)
    for policy in ("rule", "learned"):  # the rules, and a tree learned from the stories
        report = run_dialogues(domain, scripts, engine=FakeEngine(), policy=policy,
                               classifier=classifier)
        assert (len(report.dialogues), report.turns) == (7, 16)
        assert report.action_accuracy == 1.0 and report.task_success == 1.0, policy
