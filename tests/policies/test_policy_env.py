"""The Gymnasium environment: it passes Stable-Baselines3's checks and is the simulation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stable_baselines3.common.env_checker import check_env

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import RulePolicy
from dialoop.engine.embedding import Embedder
from dialoop.policy.env import DialogueEnv
from dialoop.policy.mdp import dialogue_reward
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise


@pytest.fixture
def env(tiny_domain: Domain, embedder: Embedder) -> Iterator[DialogueEnv]:
    with Simulation(tiny_domain, noise=Noise.uniform(0.2), seed=2, embedder=embedder) as sim:
        env = DialogueEnv(sim)
        yield env
        env.close()


def test_the_environment_passes_the_stable_baselines3_checks(env: DialogueEnv) -> None:
    check_env(env, warn=True)
    assert env.action_space.n == len(env.mdp.actions) == 8
    assert env.observation_space.shape == (len(env.mdp.state_names),)


def test_playing_the_rules_through_the_environment_is_the_simulated_dialogue(
    env: DialogueEnv,
) -> None:
    rules = RulePolicy(env.simulation.domain)
    manager = env.simulation.manager("rule")
    spec = env.simulation.domain.spec.reward
    for dialogue in range(12):
        obs, info = env.reset(seed=dialogue)
        total, done = 0.0, False
        while not done:
            features = info["features"]
            action = env.mdp.index(rules.decide(features).action, features)
            obs, reward, done, _, info = env.step(action)
            total += reward
        expected = env.simulation.run(dialogue, manager)
        assert (info["success"], info["turns"], info["handed_off"]) == (
            expected.success, expected.turns, expected.handed_off), dialogue
        assert total == pytest.approx(expected.reward)  # step rewards add up to the dialogue's
        assert total == pytest.approx(dialogue_reward(spec, turns=info["turns"],
                                                      success=info["success"],
                                                      handed_off=info["handed_off"]))


def test_a_reset_in_the_middle_of_a_dialogue_drops_it(env: DialogueEnv) -> None:
    env.reset(seed=0)
    first = env._worker
    env.step(env.mdp.index("clarify:intent"))  # keeps the dialogue going
    env.reset(seed=1)
    assert first is not None and not first.is_alive()
    obs, reward, done, _, info = env.step(env.mdp.index("hand_off"))
    while not done:
        obs, reward, done, _, info = env.step(env.mdp.index("hand_off"))
    assert info["handed_off"]
