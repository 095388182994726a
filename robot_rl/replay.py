"""Replay buffer that stores every observation frame once, images as uint8.

Frames (observations) live in one ring; each transition holds the absolute indices of its observation
frame and of its next-observation frame. Within an episode step t's next observation is step t+1's
observation, so an episode of T steps takes T+1 frames, not 2T: images are never duplicated, and never
stored as float (a peer stores float32 obs and next_obs: ~393 KB per transition with two 128x128
cameras; here it is ~98 KB per transition, 4x less).

`terminated` (the task really ended: no bootstrap) and `truncated` (the time limit cut the episode:
bootstrap from the next observation) are kept apart; only `terminated` masks the bootstrap.

Observations are flat dicts of arrays: `{"proprio": float32 (P,), "object": float32 (O,),
"images/front": uint8 (H, W, 3), ...}`; `flatten_obs` turns an env observation into one.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_rl.files import atomic_write

FORMAT_VERSION = 1


def flatten_obs(obs: dict) -> dict[str, np.ndarray]:
    """{"proprio": ..., "images": {"front": ...}} -> {"proprio": ..., "images/front": ...}."""
    flat: dict[str, np.ndarray] = {}
    for key, value in obs.items():
        if isinstance(value, dict):
            for sub, arr in value.items():
                flat[f"{key}/{sub}"] = np.asarray(arr)
        else:
            flat[key] = np.asarray(value)
    return flat


@dataclass(frozen=True)
class ObsSpec:
    """Shape and dtype of each flat observation key."""

    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]

    @classmethod
    def from_obs(cls, obs: dict) -> ObsSpec:
        flat = flatten_obs(obs)
        return cls({k: tuple(v.shape) for k, v in flat.items()}, {k: str(v.dtype) for k, v in flat.items()})

    def check(self, flat: dict[str, np.ndarray], where: str) -> None:
        if set(flat) != set(self.shapes):
            raise ValueError(f"{where}: observation keys {sorted(flat)} do not match the buffer's "
                             f"{sorted(self.shapes)}")
        for key, arr in flat.items():
            if tuple(arr.shape) != self.shapes[key]:
                raise ValueError(f"{where}: observation {key!r} has shape {tuple(arr.shape)}, the buffer "
                                 f"stores {self.shapes[key]}")


@dataclass
class Batch:
    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    next_obs: dict[str, np.ndarray]
    # Multiplies gamma * Q(next_obs) in the target: 0 where the episode terminated (truncation
    # bootstraps); gamma^(m-1) for an m-step return (1 for one step).
    discount: np.ndarray
    intervened: np.ndarray
    gripper_toggled: np.ndarray  # the step switched the gripper open<->closed (grasp penalty)
    # Discounted return-to-go of `obs` under the data's own behaviour (Cal-QL's lower bound), filled
    # when `sample` is given `returns_to_go`.
    mc_return: np.ndarray | None = None
    # Per-sample weight of the critic's Bellman error (H2O's dynamics ratio on simulator samples);
    # None: all 1.
    weight: np.ndarray | None = None
    # Which samples came from the simulator beside the robot (H2O's conservative term); None: none.
    from_sim: np.ndarray | None = None

    @staticmethod
    def concat(a: Batch, b: Batch) -> Batch:
        weight = None
        if a.weight is not None or b.weight is not None:
            ones = [np.ones(len(x.reward), np.float32) if x.weight is None else x.weight for x in (a, b)]
            weight = np.concatenate(ones)
        from_sim = None
        if a.from_sim is not None or b.from_sim is not None:
            from_sim = np.concatenate([np.zeros(len(x.reward), bool) if x.from_sim is None else x.from_sim
                                       for x in (a, b)])
        return Batch(
            obs={k: np.concatenate([a.obs[k], b.obs[k]]) for k in a.obs},
            action=np.concatenate([a.action, b.action]),
            reward=np.concatenate([a.reward, b.reward]),
            next_obs={k: np.concatenate([a.next_obs[k], b.next_obs[k]]) for k in a.next_obs},
            discount=np.concatenate([a.discount, b.discount]),
            intervened=np.concatenate([a.intervened, b.intervened]),
            gripper_toggled=np.concatenate([a.gripper_toggled, b.gripper_toggled]),
            mc_return=(np.concatenate([a.mc_return, b.mc_return])
                       if a.mc_return is not None and b.mc_return is not None else None),
            weight=weight,
            from_sim=from_sim,
        )


class ReplayBuffer:
    def __init__(self, capacity: int, obs_spec: ObsSpec, action_dim: int):
        if capacity < 2:
            raise ValueError(f"ReplayBuffer capacity must be >= 2, got {capacity}")
        self.capacity = int(capacity)
        self.obs_spec = obs_spec
        self.action_dim = int(action_dim)
        self._frames = {k: np.zeros((capacity, *s), dtype=obs_spec.dtypes[k]) for k, s in obs_spec.shapes.items()}
        self._obs_frame = np.zeros(capacity, dtype=np.int64)  # absolute frame index of obs
        self._next_frame = np.zeros(capacity, dtype=np.int64)
        self._action = np.zeros((capacity, action_dim), dtype=np.float32)
        self._reward = np.zeros(capacity, dtype=np.float32)
        self._terminated = np.zeros(capacity, dtype=bool)
        self._truncated = np.zeros(capacity, dtype=bool)
        self._intervened = np.zeros(capacity, dtype=bool)
        self._gripper_toggled = np.zeros(capacity, dtype=bool)
        self.frames_written = 0  # absolute counters: slot = index % capacity
        self.transitions_written = 0
        self._current_frame: int | None = None  # frame of the last observation of an open episode

    # -- writing ---------------------------------------------------------------------------------
    def _write_frame(self, flat: dict[str, np.ndarray]) -> int:
        slot = self.frames_written % self.capacity
        for key, arr in flat.items():
            self._frames[key][slot] = arr
        self.frames_written += 1
        return self.frames_written - 1

    def start_episode(self, obs: dict) -> None:
        flat = flatten_obs(obs)
        self.obs_spec.check(flat, "ReplayBuffer.start_episode")
        self._current_frame = self._write_frame(flat)

    def add(self, action, reward: float, next_obs: dict, terminated: bool, truncated: bool,
            intervened: bool = False, gripper_toggled: bool = False) -> None:
        """Add the transition from the episode's current observation; `next_obs` becomes current."""
        if self._current_frame is None:
            raise RuntimeError("ReplayBuffer.add called before start_episode(first observation)")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.action_dim,):
            raise ValueError(f"ReplayBuffer.add: action has shape {action.shape}, expected ({self.action_dim},)")
        flat = flatten_obs(next_obs)
        self.obs_spec.check(flat, "ReplayBuffer.add")
        next_frame = self._write_frame(flat)
        slot = self.transitions_written % self.capacity
        self._obs_frame[slot] = self._current_frame
        self._next_frame[slot] = next_frame
        self._action[slot] = action
        self._reward[slot] = reward
        self._terminated[slot] = terminated
        self._truncated[slot] = truncated
        self._intervened[slot] = intervened
        self._gripper_toggled[slot] = gripper_toggled
        self.transitions_written += 1
        self._current_frame = None if (terminated or truncated) else next_frame

    def add_episode(self, observations: list[dict], actions, rewards, terminated: bool, truncated: bool,
                    intervened=None, gripper_toggled=None) -> None:
        """A whole episode: T+1 observations, T actions and rewards; the end flags apply to the last step."""
        steps = len(actions)
        if len(observations) != steps + 1 or len(rewards) != steps:
            raise ValueError(f"add_episode needs T+1 observations and T actions/rewards, got "
                             f"{len(observations)}, {steps}, {len(rewards)}")
        self.start_episode(observations[0])
        for t in range(steps):
            last = t == steps - 1
            self.add(actions[t], rewards[t], observations[t + 1], terminated and last, truncated and last,
                     bool(intervened[t]) if intervened is not None else False,
                     bool(gripper_toggled[t]) if gripper_toggled is not None else False)

    # -- reading ---------------------------------------------------------------------------------
    def _first_valid(self) -> int:
        """Absolute index of the oldest transition whose frames have not been overwritten."""
        low = max(0, self.transitions_written - self.capacity)
        oldest_frame = self.frames_written - self.capacity
        while low < self.transitions_written and self._obs_frame[low % self.capacity] < oldest_frame:
            low += 1
        return low

    def __len__(self) -> int:
        return self.transitions_written - self._first_valid()

    def returns_to_go(self, gamma: float) -> np.ndarray:
        """Per transition slot: the discounted return from that step to its episode's end, sum_k
        gamma^k r_{t+k}. An episode cut by the time limit (or still open) is continued with its last
        reward forever (r_last / (1 - gamma)): 0 for a sparse-reward failure, as in Cal-QL. For a
        fixed dataset: compute once, pass to `sample`."""
        out = np.zeros(self.capacity, dtype=np.float32)
        low, high = self._first_valid(), self.transitions_written
        following = 0.0  # return of the step after the current one, same episode
        for index in range(high - 1, low - 1, -1):
            slot = index % self.capacity
            nxt = index + 1
            continues = (nxt < high and not (self._terminated[slot] or self._truncated[slot])
                         and self._obs_frame[nxt % self.capacity] == self._next_frame[slot])
            reward = float(self._reward[slot])
            if continues:
                tail = following
            elif self._terminated[slot]:
                tail = 0.0
            else:
                tail = reward / (1.0 - gamma)
            following = reward + gamma * tail
            out[slot] = following
        return out

    def sample(self, batch_size: int, rng: np.random.Generator, n_step: int = 1,
               gamma: float = 0.99, returns_to_go: np.ndarray | None = None) -> Batch:
        """Uniform transitions. With n_step > 1 the reward is the discounted sum over up to n steps
        of the same episode (fewer at its end) and next_obs the observation after the last of them.
        `returns_to_go` (from `returns_to_go()`) fills `Batch.mc_return`."""
        low = self._first_valid()
        if self.transitions_written - low <= 0:
            raise RuntimeError("ReplayBuffer.sample on an empty buffer")
        index = rng.integers(low, self.transitions_written, size=batch_size)
        slots = index % self.capacity
        reward = self._reward[slots].copy()
        next_frame = self._next_frame[slots].copy()
        terminated = self._terminated[slots].copy()
        discount = np.ones(batch_size, dtype=np.float32)
        alive = ~(terminated | self._truncated[slots])
        for k in range(1, n_step):
            following = index + k
            j = following % self.capacity
            # The next transition continues this episode iff its observation is our next frame.
            cont = alive & (following < self.transitions_written) & (self._obs_frame[j] == next_frame)
            reward += np.where(cont, gamma**k * self._reward[j], 0.0).astype(np.float32)
            next_frame = np.where(cont, self._next_frame[j], next_frame)
            terminated = np.where(cont, self._terminated[j], terminated)
            discount = np.where(cont, np.float32(gamma**k), discount)
            alive = cont & ~(self._terminated[j] | self._truncated[j])
        obs_slots = self._obs_frame[slots] % self.capacity
        next_slots = next_frame % self.capacity
        return Batch(
            obs={k: v[obs_slots] for k, v in self._frames.items()},
            action=self._action[slots],
            reward=reward,
            next_obs={k: v[next_slots] for k, v in self._frames.items()},
            discount=(discount * ~terminated).astype(np.float32),
            intervened=self._intervened[slots],
            gripper_toggled=self._gripper_toggled[slots],
            mc_return=returns_to_go[slots] if returns_to_go is not None else None,
        )

    def add_to_last_reward(self, delta: float) -> None:
        """Change the reward of the newest transition (e.g. a penalty the policy earned when a human
        had to take over right after it)."""
        if self.transitions_written == 0:
            raise RuntimeError("ReplayBuffer.add_to_last_reward on an empty buffer")
        self._reward[(self.transitions_written - 1) % self.capacity] += delta

    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._frames.values())

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename): a crash leaves the previous file intact."""
        meta = {"format_version": FORMAT_VERSION, "capacity": self.capacity, "action_dim": self.action_dim,
                "shapes": {k: list(v) for k, v in self.obs_spec.shapes.items()},
                "dtypes": self.obs_spec.dtypes, "frames_written": self.frames_written,
                "transitions_written": self.transitions_written, "current_frame": self._current_frame}
        # Only the slots in use: a large, mostly empty buffer must not write gigabytes of zeros.
        frames = min(self.frames_written, self.capacity)
        steps = min(self.transitions_written, self.capacity)
        arrays = {f"frame:{k}": v[:frames] for k, v in self._frames.items()}
        arrays.update(obs_frame=self._obs_frame[:steps], next_frame=self._next_frame[:steps],
                      action=self._action[:steps], reward=self._reward[:steps],
                      terminated=self._terminated[:steps], truncated=self._truncated[:steps],
                      intervened=self._intervened[:steps], gripper_toggled=self._gripper_toggled[:steps],
                      meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> ReplayBuffer:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                if meta.get("format_version") != FORMAT_VERSION:
                    raise ValueError(f"format_version {meta.get('format_version')} != {FORMAT_VERSION}")
                spec = ObsSpec({k: tuple(v) for k, v in meta["shapes"].items()}, meta["dtypes"])
                buf = cls(meta["capacity"], spec, meta["action_dim"])
                for k in buf._frames:
                    stored = data[f"frame:{k}"]
                    buf._frames[k][: len(stored)] = stored
                for name in ("obs_frame", "next_frame", "action", "reward", "terminated", "truncated",
                             "intervened", "gripper_toggled"):
                    stored = data[name]
                    getattr(buf, f"_{name}")[: len(stored)] = stored
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"replay buffer file {path} is unreadable or corrupted: {err}") from err
        buf.frames_written = meta["frames_written"]
        buf.transitions_written = meta["transitions_written"]
        buf._current_frame = meta["current_frame"]
        return buf
