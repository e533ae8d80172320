"""Dialogue policies that learn: the MDP of a domain (:mod:`.mdp`), simulated users
(:mod:`.simulator`, :mod:`.simulation`), a Gymnasium environment (:mod:`.env`) and
stored policy versions (:mod:`.registry`). See issue 13."""
