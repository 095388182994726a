"""ActionHistory: the last few commands the robot was sent, as an observation (`obs["previous_actions"]`).

A robot acts on a command some control periods after it is sent (transport, driver, controller lag).
Without the commands still in flight, the state a policy sees is not Markov: the same pose calls for a
different action depending on what is already on its way. With them, a policy (and its critics) can
account for the delay; legged and manipulation sim-to-real work commonly feeds the last actions back.

The wrapper is the same for the simulator and for a ROS 2 robot, so a policy trained in one reads the
same observation in the other. It records `info["executed_action"]`: the command that was sent (a
human's, while one intervenes), not the policy's proposal. Oldest first, zeros after a reset.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

KEY = "previous_actions"


class ActionHistory(gym.Wrapper):
    def __init__(self, env: gym.Env, length: int):
        super().__init__(env)
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"action_history must be an integer >= 1, got {length!r}")
        self.length = length
        self.action_dim = int(env.action_space.shape[0])
        self._history = np.zeros((length, self.action_dim), np.float32)
        spaces = dict(env.observation_space.spaces)
        if KEY in spaces:
            raise ValueError(f"the env already observes {KEY!r}: wrap it in ActionHistory once")
        spaces[KEY] = gym.spaces.Box(-1.0, 1.0, (length * self.action_dim,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

    @property
    def steps(self) -> int:
        return self.env.unwrapped.steps

    def _observe(self, obs: dict) -> dict:
        return {**obs, KEY: self._history.reshape(-1).copy()}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._history[:] = 0.0
        return self._observe(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        sent = info.get("executed_action")
        if sent is None:  # an env that does not report it sent what it was given
            sent = np.clip(np.asarray(action, np.float32).reshape(-1), -1.0, 1.0)
        self._history = np.roll(self._history, -1, axis=0)
        self._history[-1] = sent
        return self._observe(obs), reward, terminated, truncated, info
