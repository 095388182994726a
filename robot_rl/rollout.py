"""The one place an episode is played: reset, act, step, until terminated or truncated. Training,
evaluation, demo recording and actors all iterate `episode_steps`; what they do with each step
(store it, update, show it to an operator) is theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from robot_rl.replay import ObsSpec, ReplayBuffer, flatten_obs

# obs -> (action to send, whether a human chose it)
Behaviour = Callable[[dict], "tuple[np.ndarray, bool]"]


@dataclass
class Step:
    action: np.ndarray  # what was executed: the env's `info["executed_action"]` when it says, else what was sent
    reward: float
    next_obs: dict
    terminated: bool
    truncated: bool
    info: dict
    intervened: bool = False
    gripper_toggled: bool = False  # the env switched its gripper open<->closed (a grasp penalty's input)
    index: int = 0  # 0-based step number within the episode

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


def episode_steps(env, behaviour: Behaviour, obs: dict) -> Iterator[Step]:
    """Steps of one episode from `obs` (what `env.reset` returned) until it terminates or is truncated.
    The caller may set `step.reward` before asking for the next step, and may stop early."""
    index = 0
    while True:
        action, intervened = behaviour(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        step = Step(np.asarray(info.get("executed_action", action), np.float32), float(reward), obs,
                    bool(terminated), bool(truncated), info, bool(intervened),
                    bool(info.get("gripper_toggled", False)), index)
        yield step
        if step.done:
            return
        index += 1


def evaluate(agent, env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic (mean-action) evaluation on seeds disjoint from training's."""
    def behaviour(obs: dict):
        return agent.act(flatten_obs(obs), deterministic=True), False

    successes, returns, lengths = 0, [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, length, step = 0.0, 0, None
        for step in episode_steps(env, behaviour, obs):
            total += step.reward
            length += 1
        successes += int(step.info["success"])
        returns.append(total)
        lengths.append(length)
    return {"success_rate": successes / episodes, "mean_return": float(np.mean(returns)),
            "mean_length": float(np.mean(lengths))}


def record_demos(env, policy, episodes: int, seed: int) -> ReplayBuffer:
    """Successful episodes of a scripted `policy` (`reset()`, `act(obs)`), seeds from `seed` on, in a
    buffer of their own, sized to hold them all."""
    def behaviour(obs: dict):
        return policy.act(obs), False

    recorded: list[tuple[dict, list[Step]]] = []
    attempt = 0
    while len(recorded) < episodes:
        if attempt > 3 * episodes + 10:
            raise RuntimeError(f"the scripted policy succeeded in only {len(recorded)} of {attempt} episodes")
        obs, _ = env.reset(seed=seed + attempt)
        policy.reset()
        steps = list(episode_steps(env, behaviour, obs))
        attempt += 1
        if steps[-1].info["success"]:
            recorded.append((obs, steps))
    frames = sum(len(steps) + 1 for _, steps in recorded)
    buffer = ReplayBuffer(max(frames, 1000), ObsSpec.from_obs(recorded[0][0]), env.action_space.shape[0])
    for obs, steps in recorded:
        buffer.add_episode([obs] + [s.next_obs for s in steps], [s.action for s in steps],
                           [s.reward for s in steps], steps[-1].terminated, steps[-1].truncated,
                           gripper_toggled=[s.gripper_toggled for s in steps])
    return buffer
