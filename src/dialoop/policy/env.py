"""A Gymnasium environment over simulated dialogues, for Stable-Baselines3 and the like.

    env = DialogueEnv(Simulation(domain, noise=Noise.uniform(0.2)))
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

One episode is one simulated dialogue; one step is one decision of the policy (see
:mod:`~dialoop.policy.mdp`): the observation is the state vector of the features
the manager gives a policy, the action an index into ``MDP.actions``; ``info`` carries
the :class:`~dialoop.dialogue.policy.Features` themselves (to ask another policy what
it would do, e.g. the rules as a teacher).

The manager's turn loop calls the policy (``decide``) from inside ``plan()``; an RL
library wants to call ``step()`` from outside. So each episode runs in a worker
thread, whose policy hands the features over and waits for the agent's action: only
one of the two threads runs at any time, so the dialogue is exactly the one the same
decisions would give in ``Simulation.run``.

Reward per step: the domain's turn cost for each turn the step ended, its hand-off
cost when the step handed off, and success or failure on the last step; an episode's
rewards add up to the dialogue's reward in ``dialoop simulate``.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import gymnasium as gym
import numpy as np

from dialoop.dialogue.manager import TurnPlan
from dialoop.dialogue.policy import Decision, Features
from dialoop.policy.simulation import DialogueResult, Simulation

__all__ = ["DialogueEnv"]


class _Aborted(Exception):
    """The episode was dropped (reset or close) while the manager waited for an action."""


class DialogueEnv(gym.Env):  # type: ignore[type-arg]
    metadata = {"render_modes": []}

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation
        self.mdp = simulation.mdp
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(self.mdp.state_names),),
                                                dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.mdp.actions))
        self._manager = simulation.manager(_Agent(self))
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._actions: queue.Queue[int | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._episode = 0
        self._turns = 0  # turns answered in this episode
        self._handed_off = False

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._stop()
        if seed is not None:
            self._episode = seed  # the same seed, the same simulated user
        index, self._episode = self._episode, self._episode + 1
        self._turns, self._handed_off = 0, False
        self._worker = threading.Thread(target=self._run, args=(index,), daemon=True,
                                        name=f"dialoop-sim-{index}")
        self._worker.start()
        kind, payload = self._events.get()
        if kind == "error":
            raise payload
        assert kind == "decide", "a dialogue starts with a decision"
        return self.mdp.vector(payload), {"dialogue": index, "features": payload}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._worker is None:
            raise RuntimeError("Call reset() before step().")
        turns, handed_off = self._turns, self._handed_off
        self._actions.put(int(action))
        kind, payload = self._events.get()
        if kind == "error":
            self._worker = None
            raise payload
        spec = self.simulation.domain.spec.reward
        reward = spec.turn * (self._turns - turns)
        reward += spec.hand_off if self._handed_off and not handed_off else 0.0
        if kind == "done":
            result: DialogueResult = payload
            self._worker = None
            reward += spec.success if result.success else spec.failure
            info = {"success": result.success, "ended": result.ended, "turns": result.turns,
                    "handed_off": result.handed_off, "reward": result.reward}
            return np.zeros(self.observation_space.shape, np.float32), float(reward), True, \
                False, info
        return self.mdp.vector(payload), float(reward), False, False, {"features": payload}

    def close(self) -> None:
        self._stop()

    # -- the worker thread ---------------------------------------------------------------

    def _run(self, index: int) -> None:
        try:
            result = self.simulation.run(index, self._manager, on_turn=self._turn_done)
        except _Aborted:
            return
        except Exception as exc:  # hand it to the caller of step()
            self._events.put(("error", exc))
            return
        self._events.put(("done", result))

    def _turn_done(self, plan: TurnPlan) -> None:
        self._turns += 1
        self._handed_off = self._handed_off or plan.state.handed_off

    def _decide(self, features: Features) -> Decision:
        self._events.put(("decide", features))
        action = self._actions.get()
        if action is None:
            raise _Aborted
        return Decision(self.mdp.action(action), "chosen by the agent being trained", "agent")

    def _stop(self) -> None:
        """End a dialogue still in progress (its worker waits for an action)."""
        if self._worker is not None and self._worker.is_alive():
            self._actions.put(None)
            self._worker.join()
        self._worker = None
        self._events = queue.Queue()
        self._actions = queue.Queue()


class _Agent:
    """The policy the environment's manager asks: it waits for the agent's action."""

    name = "agent"

    def __init__(self, env: DialogueEnv) -> None:
        self._env = env

    def decide(self, features: Features) -> Decision:
        return self._env._decide(features)
