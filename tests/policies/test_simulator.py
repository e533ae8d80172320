"""The simulated users: goals from the domain, seeded noise, success, and who scores better."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Decision, Features
from dialoop.engine.embedding import Embedder
from dialoop.errors import ConfigError
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise, UserModel, goal_task


def test_goals_come_from_the_domain_and_its_rules(tiny_domain: Domain) -> None:
    users = UserModel(tiny_domain)
    assert {i: goal_task(tiny_domain, i) for i in tiny_domain.spec.intents} == {
        "order_status": "call_tool:lookup_order", "talk_to_person": "hand_off",
        "chit_chat": "answer"}
    assert set(users.values["order_number"]) == {1234, 5678, 4321}  # the examples' numbers
    assert ("Has order {order_number} shipped?", ("order_number",)) in users.templates[
        "order_status"]
    goals = [users.goal(random.Random(f"7:{i}")) for i in range(300)]
    assert set(Counter(g.intent for g in goals)) == set(tiny_domain.spec.intents)
    assert all(g.slots["order_number"] in {1234, 5678, 4321}
               for g in goals if g.intent == "order_status")
    assert goals == [users.goal(random.Random(f"7:{i}")) for i in range(300)]  # seeded


def test_without_noise_the_rules_serve_every_simulated_user(tiny_sim: Simulation) -> None:
    report = tiny_sim.run_many(60, "rule")
    assert report.success_rate == 1.0
    assert all(d.events == () for d in report.dialogues)
    by_intent = {d.intent: d for d in report.dialogues}
    assert by_intent["talk_to_person"].handed_off and by_intent["talk_to_person"].turns == 1
    # success 10, a turn costs 0.5, a hand-off 2 (the tiny domain's reward section)
    assert by_intent["talk_to_person"].reward == 10 - 0.5 - 2
    assert 1.0 < report.average_turns < 2.0  # an order number is often asked for


def test_noise_happens_as_often_as_set_and_the_same_seed_gives_the_same_run(
    tiny_domain: Domain, embedder: Embedder,
) -> None:
    with Simulation(tiny_domain, noise=Noise.uniform(0.3), seed=3, embedder=embedder) as sim:
        first = sim.run_many(200, "rule")
        again = sim.run_many(200, "rule")
    assert [d.__dict__ for d in first.dialogues] == [d.__dict__ for d in again.dialogues]
    events = Counter(e for d in first.dialogues for e in d.events)
    assert 40 <= events["impatient"] <= 80  # 0.3 × 200 = 60, drawn once per user
    assert 40 <= events["goal change"] <= 80
    assert events["misheard intent"] > 20 and events["wrong order_number"] > 5
    ended = Counter(d.ended for d in first.dialogues)
    assert ended["gave up"] > 0 and ended["success"] > 100
    assert first.success_rate < 1.0


def test_a_bad_policy_scores_lower_than_the_rules(tiny_domain: Domain,
                                                  embedder: Embedder) -> None:
    class AlwaysAnswer:
        name = "always-answer"

        def decide(self, features: Features) -> Decision:
            return Decision("answer", "never asks, never acts", self.name)

    with Simulation(tiny_domain, noise=Noise.uniform(0.1), seed=5, embedder=embedder) as sim:
        rule = sim.run_many(150, "rule")
        bad = sim.run_many(150, AlwaysAnswer())
    assert rule.success_rate >= 0.8
    assert bad.success_rate < rule.success_rate - 0.3  # no order looked up, no hand-off
    assert bad.average_reward < rule.average_reward
    assert bad.hand_off_rate == 0.0


def test_noise_must_be_a_probability() -> None:
    with pytest.raises(ConfigError, match="Noise value is a probability"):
        Noise(value=1.5)
