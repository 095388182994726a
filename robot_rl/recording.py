"""Recording an episode from env-style calls (reset, then step after step) into an `Episode` file:
teleop demos, scripted demos, and any recorder a user writes around their own loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.episodes import _ACTOR_ID, IMAGE_PREFIX, RESERVED_KEYS, Episode, now_iso, save_episode
from robot_rl.replay import flatten_obs


def _check_frame(flat: dict[str, np.ndarray], where: str) -> None:
    """One observation as Episode.validate will want it: uint8 RGB images, finite numbers."""
    if not flat:
        raise ValueError(f"{where}: the observation is empty")
    for key, value in flat.items():
        if key in RESERVED_KEYS:
            raise ValueError(f"{where}: observation key {key!r} is reserved for the episode's own arrays")
        if key.startswith(IMAGE_PREFIX):
            if value.dtype != np.uint8 or value.ndim != 3 or value.shape[-1] != 3:
                raise ValueError(f"{where}: observation {key!r} is {value.dtype} {value.shape}; images must "
                                 f"be uint8 (H, W, 3)")
        elif value.dtype.kind not in "fiub":
            raise ValueError(f"{where}: observation {key!r} has non-numeric dtype {value.dtype}")
        elif value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ValueError(f"{where}: observation {key!r} has non-finite values")


class EpisodeRecorder:
    """Builds an episode from env-style calls and saves it atomically when it ends.

        recorder = EpisodeRecorder("episodes/", task="PickCube-v0", actor_id="robot1")
        obs, _ = env.reset(seed=s)
        recorder.start(obs, seed=s)
        while True:
            obs, reward, terminated, truncated, info = env.step(action)
            path = recorder.step(action, reward, obs, terminated, truncated, info)
            if terminated or truncated:
                break            # path: the saved file

    `info` may carry `executed_action` (stored as `action`: the human's while intervening, the env's
    delayed one under latency), `policy_action` (else the `action` argument counts as the policy's),
    `intervened`, `gripper_toggled`, `reward_source` (else `default_reward_source`) and `success`
    (the last step's value becomes the episode's). `policy_action` is stored only when it differs from
    the executed action at some step. Each step is checked as it comes (shapes, finite values), so a
    bad call raises at once and leaves the episode as it was. With `keep_failures=False`, an episode
    that ends without success is discarded (demo recording). `action_dim` (else the first step's) is
    checked at every step of every episode. The last finished episode stays in
    `last_episode` (to retry a save that failed, e.g. on a full disk)."""

    def __init__(self, directory: str | Path, task: str, actor_id: str = "local",
                 policy_version: int | str | None = None, robot_profile: str | None = None,
                 default_reward_source: str = "sim", extra: dict | None = None, keep_failures: bool = True,
                 action_dim: int | None = None, clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.task = task
        self.actor_id = actor_id
        self.policy_version = policy_version
        self.robot_profile = robot_profile
        self.default_reward_source = default_reward_source
        self.extra = dict(extra or {})
        self.keep_failures = keep_failures
        self.action_dim = action_dim  # else taken from the first step recorded
        self.clock = clock
        self.last_episode: Episode | None = None
        self._reset_buffers()
        # Fail now, not after a whole episode, on a bad actor id or task.
        if not isinstance(task, str) or not task:
            raise ValueError(f"EpisodeRecorder: task must be a non-empty string, got {task!r}")
        if not isinstance(actor_id, str) or not _ACTOR_ID.match(actor_id):
            raise ValueError(f"EpisodeRecorder: actor_id {actor_id!r} must be 1-64 characters of letters, "
                             f"digits, '.', '_' or '-'")

    def _reset_buffers(self) -> None:
        self._active = False
        self._frames: list[dict[str, np.ndarray]] = []
        self._times: list[float] = []
        self._actions: list[np.ndarray] = []
        self._policy_actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._intervened: list[bool] = []
        self._toggled: list[bool] = []
        self._sources: list[str] = []
        self._success: bool | None = None
        self._episode_meta: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        """An episode is being recorded (start() called, not yet ended or aborted)."""
        return self._active

    @property
    def steps(self) -> int:
        return len(self._actions)

    def start(self, obs: dict, timestamp: float | None = None, *, seed: int | None = None,
              policy_version: int | str | None = None, extra: dict | None = None) -> None:
        """Begin an episode at its first observation (`seed`, `policy_version` and `extra` apply to this
        episode only, on top of the recorder's)."""
        if self._active:
            raise RuntimeError(f"EpisodeRecorder.start: an episode of {self.steps} steps is still open; "
                               f"end it with a terminated/truncated step or call abort() first")
        flat = {k: np.array(v, copy=True) for k, v in flatten_obs(obs).items()}
        _check_frame(flat, "EpisodeRecorder.start")
        self._reset_buffers()
        self._frames.append(flat)
        self._times.append(float(self.clock() if timestamp is None else timestamp))
        self._episode_meta = {
            "created": now_iso(),
            "seed": seed,
            "policy_version": self.policy_version if policy_version is None else policy_version,
            "extra": {**self.extra, **(extra or {})},
        }
        self._active = True

    def step(self, action, reward: float, next_obs: dict, terminated: bool, truncated: bool,
             info: dict | None = None, timestamp: float | None = None) -> Path | None:
        """Record one step. When it ends the episode (terminated or truncated) the episode is saved and
        its path returned (None if discarded by keep_failures=False); otherwise returns None."""
        if not self._active:
            raise RuntimeError("EpisodeRecorder.step called before start(first observation)")
        info = info or {}
        commanded = np.asarray(action, dtype=np.float32).reshape(-1)
        executed = np.asarray(info.get("executed_action", commanded), dtype=np.float32).reshape(-1)
        proposed = np.asarray(info.get("policy_action", commanded), dtype=np.float32).reshape(-1)
        want = (self.action_dim if self.action_dim is not None else executed.size,)
        for name, value in (("action", executed), ("policy_action", proposed)):
            if value.shape != want or value.size == 0:
                raise ValueError(f"EpisodeRecorder.step: {name} has shape {value.shape}, expected {want}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"EpisodeRecorder.step: {name} has non-finite values {value.tolist()}")
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"EpisodeRecorder.step: reward is {reward}")
        flat = {k: np.array(v, copy=True) for k, v in flatten_obs(next_obs).items()}
        first = self._frames[0]
        if set(flat) != set(first):
            raise ValueError(f"EpisodeRecorder.step: observation keys {sorted(flat)} differ from the first "
                             f"observation's {sorted(first)}")
        for key, value in flat.items():
            if value.shape != first[key].shape:
                raise ValueError(f"EpisodeRecorder.step: observation {key!r} has shape {value.shape}, the "
                                 f"first observation's is {first[key].shape}")
        _check_frame(flat, "EpisodeRecorder.step")
        source = info.get("reward_source", self.default_reward_source)
        if not isinstance(source, str) or not source:
            raise ValueError(f"EpisodeRecorder.step: info['reward_source'] must be a non-empty string, "
                             f"got {source!r}")
        now = float(self.clock() if timestamp is None else timestamp)

        self.action_dim = executed.size  # every later step and episode must match
        self._frames.append(flat)
        self._times.append(now)
        self._actions.append(executed)
        self._policy_actions.append(proposed)
        self._rewards.append(reward)
        self._intervened.append(bool(info.get("intervened", False)))
        self._toggled.append(bool(info.get("gripper_toggled", False)))
        self._sources.append(source)
        if "success" in info:
            self._success = bool(info["success"])
        if not (terminated or truncated):
            return None

        episode = self._build(bool(terminated), bool(truncated))
        self._reset_buffers()
        self.last_episode = episode
        if not self.keep_failures and episode.success is not True:
            return None
        return save_episode(episode, self.directory)

    def abort(self) -> None:
        """Discard the episode being recorded (nothing is written)."""
        self._reset_buffers()

    def _build(self, terminated: bool, truncated: bool) -> Episode:
        steps = len(self._actions)
        ends = np.zeros(steps, dtype=bool)
        term, trunc = ends.copy(), ends.copy()
        term[-1], trunc[-1] = terminated, truncated
        table: list[str] = []
        for source in self._sources:
            if source not in table:
                table.append(source)
        action = np.stack(self._actions).astype(np.float32)
        proposed = np.stack(self._policy_actions).astype(np.float32)
        return Episode(
            task=self.task,
            observations={k: np.stack([f[k] for f in self._frames]) for k in self._frames[0]},
            action=action,
            reward=np.asarray(self._rewards, dtype=np.float32),
            terminated=term,
            truncated=trunc,
            intervened=np.asarray(self._intervened, dtype=bool),
            gripper_toggled=np.asarray(self._toggled, dtype=bool),
            timestamp=np.asarray(self._times, dtype=np.float64),
            reward_source=np.asarray([table.index(s) for s in self._sources], dtype=np.uint8),
            reward_sources=table,
            policy_action=None if np.array_equal(proposed, action) else proposed,
            actor_id=self.actor_id,
            robot_profile=self.robot_profile,
            success=self._success,
            **self._episode_meta,
        )
