"""Any gymnasium env as the learner sees an env: dict observations, actions in [-1, 1], and `success`
in `info`. Nothing of the env is imitated or assumed beyond gymnasium's own API.

- Observations: a Box becomes `{"state": float32}` (or, a uint8 HxWxC image, `{"images": {"pixels"}}`);
  a Dict (nested Dicts flattened with "/") keeps its keys: vectors as float32, uint8 HxWxC arrays as
  camera images under `images/`. Goal envs (observation, achieved_goal, desired_goal) work as they are.
- Actions: a bounded Box that is not [-1, 1] is rescaled affinely; the policy always acts in [-1, 1],
  and `info["executed_action"]` is the normalised action that was sent.
- Success: `info[success_key]`, else gymnasium-robotics' `is_success`, else `success`, else False.
- `terminated` and `truncated` are passed through apart (a time limit still bootstraps).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SUCCESS_KEYS = ("is_success", "success")


def _is_image(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 \
        and space.shape[-1] in (1, 3, 4)


def _flat_spaces(space: spaces.Space, prefix: str = "") -> dict[str, spaces.Box]:
    if isinstance(space, spaces.Dict):
        out: dict[str, spaces.Box] = {}
        for key, sub in space.spaces.items():
            out.update(_flat_spaces(sub, f"{prefix}{key}/"))
        return out
    if not isinstance(space, spaces.Box):
        raise ValueError(f"observation {prefix.rstrip('/') or 'space'} is a {type(space).__name__}; the learner "
                         f"takes Box and Dict observations (wrap the env, e.g. gymnasium's FlattenObservation)")
    return {prefix.rstrip("/"): space}


class GymEnv(gym.Env):
    """Adapts `env` (a gymnasium env) to the learner's contract; `raw_obs` is the env's own last observation."""

    def __init__(self, env: gym.Env, success_key: str | None = None):
        self.env = env
        action_space = env.action_space
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"env action space {action_space} is not a 1-D Box: the agents act in continuous "
                             f"Box spaces (discretise or wrap the env)")
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"env action space {action_space} is unbounded: give it finite low/high to rescale")
        self._low, self._high = low, high
        self.action_space = spaces.Box(-1.0, 1.0, action_space.shape, np.float32)
        self._keys = _flat_spaces(env.observation_space)
        self._single = not isinstance(env.observation_space, spaces.Dict)
        self.observation_space = env.observation_space  # as the env defines it; observations are dicts
        self.success_key = success_key
        self.raw_obs: Any = None
        self.metadata = getattr(env, "metadata", {})

    # -- conversions ---------------------------------------------------------------------------------
    def observation(self, raw: Any) -> dict:
        self.raw_obs = raw
        if self._single:
            if _is_image(self.env.observation_space):
                return {"images": {"pixels": np.asarray(raw, np.uint8)}}
            return {"state": np.asarray(raw, np.float32).reshape(-1)}
        flat: dict[str, Any] = {}
        for key, space in self._keys.items():
            value = raw
            for part in key.split("/"):
                value = value[part]
            if _is_image(space):
                flat.setdefault("images", {})[key.replace("/", "_")] = np.asarray(value, np.uint8)
            else:
                flat[key.replace("/", "_")] = np.asarray(value, np.float32).reshape(-1)
        return flat

    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        """[-1, 1] -> the env's own bounds."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        return (self._low + (a + 1.0) * 0.5 * (self._high - self._low)).astype(self.env.action_space.dtype)

    def from_env_action(self, action: np.ndarray) -> np.ndarray:
        """The env's own bounds -> [-1, 1] (for demos a scripted policy writes in the env's units)."""
        span = np.where(self._high > self._low, self._high - self._low, 1.0)
        return np.clip(2.0 * (np.asarray(action, np.float64) - self._low) / span - 1.0, -1.0, 1.0).astype(np.float32)

    def _success(self, info: dict) -> bool:
        if self.success_key is not None:
            if self.success_key not in info:
                raise ValueError(f"env.success_key {self.success_key!r} is not in the env's info "
                                 f"(keys: {sorted(info)})")
            return bool(info[self.success_key])
        for key in SUCCESS_KEYS:
            if key in info:
                return bool(info[key])
        return False

    # -- gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raw, info = self.env.reset(seed=seed, options=options)
        return self.observation(raw), {**info, "success": False}

    def step(self, action: np.ndarray):
        normalised = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        raw, reward, terminated, truncated, info = self.env.step(self.to_env_action(normalised))
        info = {**info, "success": self._success(info), "executed_action": normalised}
        return self.observation(raw), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def make_gym_env(env_id: str, kwargs: dict | None = None, success_key: str | None = None) -> GymEnv:
    """`gymnasium.make(env_id, **kwargs)` adapted; `module:Env-v0` imports `module` first."""
    try:
        env = gym.make(env_id, **(kwargs or {}))
    except (gym.error.Error, ImportError) as err:  # unknown id, unknown version, missing module
        raise ValueError(f"env.id {env_id!r}: {err} (a project task: PickCube-v0, PegInsertion-v0; another "
                         f"package's env: its id, or module:Env-v0 to import the module that registers it)") from err
    except TypeError as err:
        raise ValueError(f"env.kwargs do not fit {env_id!r}: {err}") from err
    return GymEnv(env, success_key)


def load_function(target: str, what: str) -> Callable:
    """`module:function` -> the function."""
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{what} {target!r} cannot be loaded: {err}") from err


class ScriptedPolicy:
    """A user's `function(observation, env) -> action` (the env's own observation and action units) as a
    demo policy for a `GymEnv`: acts on the env's raw observation and returns the normalised action."""

    def __init__(self, target: str, env: GymEnv):
        self.function, self.env = load_function(target, "demo_policy"), env

    def reset(self) -> None:
        pass

    def act(self, obs: dict) -> np.ndarray:
        return self.env.from_env_action(self.function(self.env.raw_obs, self.env.env.unwrapped))
