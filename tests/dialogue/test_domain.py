"""Domain files: a good one loads; a bad one names the file, the line and the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dialoop.dialogue.domain import Domain, DomainError, general_domain, load_domain, load_scripts

GOOD = """\
name: tiny
intents:
  greet:
    examples: [hello, hi there]
  order_status:
    examples: [where is my order, track my parcel]
    requires: [order_number]
slots:
  order_number: {type: number, question: "Which order?"}
policy:
  rules:
    - when: {intent: order_status, missing: false}
      action: call_tool lookup
    - when: {}
      action: answer
tools:
  lookup:
    function: json:dumps
    parameters: {type: object}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "domain.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_store_support_loads_with_its_tools_and_stories(store_domain: Domain,
                                                       store_dir: Path) -> None:
    assert store_domain.name == "store_support"
    assert set(store_domain.spec.intents) >= {"order_status", "return_request", "shipping_cost",
                                              "product_question", "opening_hours",
                                              "talk_to_person", "chit_chat", "out_of_scope"}
    assert "lookup_order" in store_domain.tools and "start_return" in store_domain.tools
    assert store_domain.required("return_request") == ["order_number", "email", "reason"]
    assert len(store_domain.stories) >= 10
    tests = load_scripts(store_dir / "tests.yaml", store_domain)
    assert len(tests) >= 30


def test_a_small_domain_loads_and_normalizes_actions(tmp_path: Path) -> None:
    domain = load_domain(write(tmp_path, GOOD))
    assert domain.spec.policy.rules[0].action == "call_tool:lookup"
    assert not domain.is_general
    assert general_domain().is_general


@pytest.mark.parametrize(("change", "message"), [
    (("examples: [hello, hi there]", "examples: [hello, hi there"),
     r"domain.yaml:5: invalid YAML"),
    (("requires: [order_number]", "requires: [order_nr]"),
     r"domain.yaml:7: intents\.order_status\.requires\.0: no slot named 'order_nr'"),
    (("order_number: {type: number,", "order_number: {type: integer,"),
     r"domain.yaml:9: slots\.order_number\.type: Input should be 'text', 'number'"),
    (("order_number: {type: number, question", "order_number: {type: number, qestion"),
     r"domain.yaml:9: slots\.order_number\.qestion: unknown key 'qestion'"),
    (("action: call_tool lookup", "action: call_tool lookup_order"),
     r"domain.yaml:13: policy\.rules\.0\.action: no tool named 'lookup_order'"),
    (("    - when: {}\n      action: answer", "    - when: {}\n      action: reply"),
     r"domain.yaml:15: policy\.rules\.1\.action: unknown action 'reply'"),
    (("when: {intent: order_status, missing: false}", "when: {intent: status, missing: false}"),
     r"domain.yaml:12: policy\.rules\.0\.when\.intent: no intent named 'status'"),
    (("function: json:dumps", "function: json:nothing"),
     r"domain.yaml:18: tool 'lookup': json has no function 'nothing'"),
])
def test_a_bad_domain_names_file_line_and_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(DomainError, match=message):
        load_domain(path)


def test_a_bad_template_and_a_missing_file_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "templates:\n  lookup: '{{ result.status '\n")
    with pytest.raises(DomainError, match=r"domain.yaml:21: template 'lookup'"):
        load_domain(path)
    with pytest.raises(DomainError, match="nothere.yaml: no such file"):
        load_domain(tmp_path / "nothere.yaml")


def test_a_bad_script_names_its_line(tmp_path: Path, store_domain: Domain) -> None:
    path = tmp_path / "tests.yaml"
    path.write_text(textwrap.dedent("""\
        dialogues:
          - name: one
            turns:
              - {user: hi, intent: chit_chat, actions: [answer]}
              - {user: where, intent: where_is_it, actions: [answer]}
        """))
    with pytest.raises(DomainError, match=r"tests.yaml:5: dialogue 'one', turn 2: no intent "
                                          r"named 'where_is_it'"):
        load_scripts(path, store_domain)
