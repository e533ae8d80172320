"""Fixtures for the policy tests: a tiny domain written here, and the real sentence embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dialoop.dialogue.domain import Domain, load_domain
from dialoop.engine.embedding import Embedder, default_embedder
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise

STORE = Path(__file__).resolve().parents[2] / "examples" / "store_support" / "domain.yaml"

TINY = r"""
name: tiny
understanding: {confidence_threshold: 0.4, llm_fallback: false}
intents:
  order_status:
    requires: [order_number]
    examples:
      - Where is my order?
      - Has order 1234 shipped?
      - track my parcel
      - when will my order arrive
      - status of order 5678 please
      - Check order 4321
  talk_to_person:
    examples:
      - I want to talk to a human
      - get me a real person
      - connect me to an agent
      - can I speak to someone
      - human please
      - transfer me to support staff
  chit_chat:
    examples: [hello, thanks a lot, good morning, bye, how are you, have a nice day]
slots:
  order_number: {type: number, pattern: '\b\d{4}\b', question: 'What is the order number?'}
tools:
  lookup_order:
    function: tools.py:lookup_order
    parameters:
      type: object
      properties: {order_number: {type: integer}}
      required: [order_number]
templates:
  lookup_order: "Order {{ result.order_number }} is {{ result.status }}."
policy:
  rules:
    - {when: {handed_off: true}, action: hand_off}
    - {when: {acted: call_tool}, action: answer}
    - {when: {confident: false}, action: clarify}
    - {when: {intent: talk_to_person}, action: hand_off}
    - {when: {missing: true}, action: clarify}
    - {when: {intent: order_status}, action: call_tool lookup_order}
    - {when: {}, action: answer}
reward: {success: 10, failure: -4, turn: -0.5, hand_off: -2, rating: 3}
"""

TOOLS = '''
def lookup_order(order_number: int) -> dict:
    return {"order_number": order_number, "status": "shipped"}
'''


def write_tiny(folder: Path, text: str = TINY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tools.py").write_text(TOOLS)
    path = folder / "domain.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny_text() -> str:
    return TINY


@pytest.fixture
def write_domain(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write the tiny domain (or ``text``) with its tools into a fresh folder."""
    return lambda text=TINY: write_tiny(tmp_path / "domain", text)


@pytest.fixture(scope="session")
def tiny_domain(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    return load_domain(write_tiny(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="session")
def store_domain() -> Domain:
    return load_domain(STORE)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return default_embedder()


@pytest.fixture
def tiny_sim(tiny_domain: Domain, embedder: Embedder) -> Iterator[Simulation]:
    with Simulation(tiny_domain, noise=Noise(), seed=1, embedder=embedder) as sim:
        yield sim


def always(mdp: MDP, action: str) -> LinearModel:
    """A deliberately bad policy: the same action whatever happens."""
    bias = np.zeros(len(mdp.actions))
    bias[mdp.actions.index(action)] = 1.0
    return LinearModel(np.zeros((len(mdp.actions), len(mdp.state_names))), bias)
