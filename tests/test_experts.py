"""The scripted experts record demos and play the simulated human: they must be reliable."""

import numpy as np
import pytest

import sim
from sim.experts import expert_for


def _success_rate(task: str, episodes: int, noise_std: float = 0.0, **config) -> float:
    env = sim.make(task, **config)
    expert = expert_for(task, env, noise_std=noise_std, rng=np.random.default_rng(0))
    successes = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        expert.reset()
        for _ in range(env.config.episode_steps):
            _, _, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        successes += info["success"]
    env.close()
    return successes / episodes


@pytest.mark.parametrize("task", sorted(sim.TASKS))
def test_expert_succeeds_on_at_least_95_of_100_seeded_episodes(task):
    assert _success_rate(task, 100) >= 0.95


@pytest.mark.parametrize("task", sorted(sim.TASKS))
def test_expert_copes_with_domain_randomisation_and_action_noise(task):
    assert _success_rate(task, 30, noise_std=0.1, randomization={"enabled": True}) >= 0.8


def test_unknown_expert_task():
    env = sim.make("PickCube-v0")
    with pytest.raises(ValueError, match="no scripted expert"):
        expert_for("Stack-v0", env)
