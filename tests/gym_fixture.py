"""A gymnasium env the project does not ship, written only against gymnasium's API, registered on
import: `env.id=gym_fixture:PointReach-v0` (with this directory on PYTHONPATH).

A point on a plane moves toward a goal. Observations are a Dict (position, goal, and optionally a
small top-down image), actions a Box in [0, 2]^2 (not [-1, 1]: the learner must rescale; 1 is "stand
still"), success is `info["is_success"]` and terminates the episode; 25 steps truncate it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PointReach(gym.Env):
    def __init__(self, image: bool = False, tolerance: float = 0.15):
        obs = {"position": spaces.Box(-1.0, 1.0, (2,), np.float64), "goal": spaces.Box(-1.0, 1.0, (2,), np.float64)}
        if image:
            obs["top_view"] = spaces.Box(0, 255, (16, 16, 3), np.uint8)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(0.0, 2.0, (2,), np.float32)
        self.image, self.tolerance = image, tolerance

    def _obs(self) -> dict:
        obs = {"position": self.position.copy(), "goal": self.goal.copy()}
        if self.image:
            view = np.zeros((16, 16, 3), np.uint8)
            for value, channel in ((self.position, 0), (self.goal, 1)):
                row, col = np.clip(((value + 1.0) * 7.5).astype(int), 0, 15)
                view[row, col, channel] = 255
            obs["top_view"] = view
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.8, 0.8, 2)
        self.goal = self.np_random.uniform(-0.8, 0.8, 2)
        return self._obs(), {"is_success": False}

    def step(self, action):
        velocity = np.clip(np.asarray(action, np.float64), 0.0, 2.0) - 1.0
        self.position = np.clip(self.position + 0.15 * velocity, -1.0, 1.0)
        distance = float(np.linalg.norm(self.position - self.goal))
        success = distance < self.tolerance
        return self._obs(), float(success), success, False, {"is_success": success, "distance": distance}


def expert(obs: dict, env) -> np.ndarray:
    """A scripted demo policy in the env's own units: full speed toward the goal."""
    direction = obs["goal"] - obs["position"]
    return np.clip(1.0 + direction / 0.15, 0.0, 2.0).astype(np.float32)


if "PointReach-v0" not in gym.registry:
    gym.register("PointReach-v0", entry_point=PointReach, max_episode_steps=25)
