"""Episode storage that never loses data: one `.npz` file per episode, written atomically.

Every episode (scripted or teleoperated demos, human interventions, online policy rollouts) becomes one
uncompressed `.npz` file (`np.savez`, read back with `allow_pickle=False`) that any numpy can open:

    proprio, object, privileged, images/<camera>   observations, T+1 frames (the final one included),
                                                  keys exactly as `robot_rl.replay.flatten_obs` makes them
    action           float32 (T, A)   the executed action (the human's while intervening)
    policy_action    float32 (T, A)   optional: what the policy proposed, where it differs
    reward           float32 (T,)
    terminated       bool (T,)        the task ended (no bootstrap); only the last step may be true
    truncated        bool (T,)        cut by a time limit/operator (bootstrap); only the last step
    intervened       bool (T,)        a human's action was executed at this step
    gripper_toggled  bool (T,)        the gripper switched open <-> closed at this step
    timestamp        float64 (T+1,)   seconds since the epoch of each observation
    reward_source    uint8 (T,)       codes into meta["reward_sources"] ("sim", "classifier", "human", ...)
    meta             uint8 (bytes)    UTF-8 JSON: task, actor, policy version, seed, success, labels, ...

`save_episode` writes through `robot_rl.files.atomic_write` (temp file + fsync + rename): a crash leaves
either no file or the whole file, never a torn one, and earlier files are never touched. File names
(`{created UTC, compact}_{actor_id}_{episode_id[:8]}.npz`) sort by time. The full format is in
docs/episodes.md.
"""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from robot_rl.files import atomic_write
from robot_rl.replay import ObsSpec

FORMAT_VERSION = 1
SUFFIX = ".npz"
IMAGE_PREFIX = "images/"
# Keys of the file that are not observations (an observation must not be named like one of them).
STEP_KEYS = ("action", "policy_action", "reward", "terminated", "truncated", "intervened", "gripper_toggled",
             "reward_source")
RESERVED_KEYS = frozenset((*STEP_KEYS, "timestamp", "meta"))
REQUIRED_KEYS = tuple(k for k in (*STEP_KEYS, "timestamp") if k != "policy_action")
OPERATOR_LABELS = ("success", "failure")
_ACTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EPISODE_ID = re.compile(r"^[0-9a-f]{32}$")


def now_iso() -> str:
    """The current time as an ISO 8601 string in UTC with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _parse_created(created: str) -> datetime:
    dt = datetime.fromisoformat(created)
    if dt.tzinfo is None:
        raise ValueError("has no time zone")
    return dt


@dataclass(eq=False)
class Episode:
    """One episode of T steps: T+1 observations (the final one included) and T of everything else.

    `reward_source` holds uint8 codes into `reward_sources` (the code table, stored in the metadata);
    `sources()` gives the strings per step."""

    task: str
    observations: dict[str, np.ndarray]  # flat keys (flatten_obs), each (T+1, ...)
    action: np.ndarray  # float32 (T, A): executed
    reward: np.ndarray  # float32 (T,)
    terminated: np.ndarray  # bool (T,)
    truncated: np.ndarray  # bool (T,)
    intervened: np.ndarray  # bool (T,)
    gripper_toggled: np.ndarray  # bool (T,)
    timestamp: np.ndarray  # float64 (T+1,): seconds since the epoch, one per observation
    reward_source: np.ndarray  # uint8 (T,): codes into reward_sources
    reward_sources: list[str] = field(default_factory=lambda: ["sim"])
    policy_action: np.ndarray | None = None  # float32 (T, A), optional
    actor_id: str = "local"
    policy_version: int | str | None = None
    seed: int | None = None
    robot_profile: str | None = None
    success: bool | None = None
    operator_label: str | None = None  # a human's verdict: "success" or "failure"
    created: str = field(default_factory=now_iso)
    episode_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def length(self) -> int:
        return len(self.action)

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[1])

    @property
    def obs_spec(self) -> ObsSpec:
        """Per-frame shapes and dtypes of the observations (what a ReplayBuffer stores)."""
        return ObsSpec({k: tuple(v.shape[1:]) for k, v in self.observations.items()},
                       {k: str(v.dtype) for k, v in self.observations.items()})

    @property
    def cameras(self) -> list[str]:
        return [k[len(IMAGE_PREFIX):] for k in self.observations if k.startswith(IMAGE_PREFIX)]

    @property
    def num_interventions(self) -> int:
        return int(np.count_nonzero(self.intervened))

    def sources(self) -> list[str]:
        """The reward source of each step as a string."""
        return [self.reward_sources[c] for c in self.reward_source]

    def frame(self, t: int) -> dict[str, np.ndarray]:
        """Observation t as a flat dict (t = T is the final observation)."""
        return {k: v[t] for k, v in self.observations.items()}

    def metadata(self) -> dict[str, Any]:
        """The JSON metadata stored under the file's `meta` key."""
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "actor_id": self.actor_id,
            "policy_version": self.policy_version,
            "seed": self.seed,
            "robot_profile": self.robot_profile,
            "success": self.success,
            "operator_label": self.operator_label,
            "created": self.created,
            "episode_id": self.episode_id,
            "length": self.length,
            "action_dim": self.action_dim,
            "observations": {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)}
                             for k, v in self.observations.items()},
            "reward_sources": list(self.reward_sources),
            "has_policy_action": self.policy_action is not None,
            "extra": self.extra,
        }

    def file_name(self) -> str:
        """`{created, UTC, compact}_{actor_id}_{episode_id[:8]}.npz`: sorts by creation time."""
        dt = _parse_created(self.created).astimezone(UTC)
        return f"{dt:%Y%m%dT%H%M%S}.{dt.microsecond:06d}Z_{self.actor_id}_{self.episode_id[:8]}{SUFFIX}"

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field and what is wrong with it."""

        def bad(name: str, why: str):
            raise ValueError(f"Episode.{name}: {why}")

        def array(name: str, value, dtype, shape: tuple) -> None:
            if not isinstance(value, np.ndarray):
                bad(name, f"must be a numpy array, got {type(value).__name__}")
            if value.dtype != np.dtype(dtype):
                bad(name, f"dtype must be {np.dtype(dtype)}, got {value.dtype}")
            if value.shape != shape:
                bad(name, f"shape must be {shape}, got {value.shape} (lengths must match: T={steps} steps, "
                          f"T+1={steps + 1} observations)")
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                bad(name, f"has non-finite values (NaN or inf) at step(s) "
                          f"{np.unique(np.nonzero(~np.isfinite(value))[0])[:10].tolist()}")

        if not isinstance(self.task, str) or not self.task:
            bad("task", f"must be a non-empty string, got {self.task!r}")
        if not isinstance(self.actor_id, str) or not _ACTOR_ID.match(self.actor_id):
            bad("actor_id", f"must be 1-64 characters of letters, digits, '.', '_' or '-' starting with a "
                            f"letter or digit (it is part of the file name), got {self.actor_id!r}")
        if not isinstance(self.episode_id, str) or not _EPISODE_ID.match(self.episode_id):
            bad("episode_id", f"must be 32 lowercase hex digits (uuid4().hex), got {self.episode_id!r}")
        if not isinstance(self.created, str):
            bad("created", f"must be an ISO 8601 string, got {type(self.created).__name__}")
        try:
            _parse_created(self.created)
        except ValueError as err:
            bad("created", f"must be an ISO 8601 time with a time zone, {self.created!r}: {err}")
        if not isinstance(self.action, np.ndarray) or self.action.ndim != 2:
            bad("action", f"must be a 2-D numpy array (T, A), got "
                          f"{getattr(self.action, 'shape', type(self.action).__name__)}")
        steps = len(self.action)
        if steps < 1:
            bad("action", "an episode needs at least one step")
        if self.action.shape[1] < 1:
            bad("action", "action dimension must be >= 1")
        array("action", self.action, np.float32, (steps, self.action.shape[1]))
        if self.policy_action is not None:
            array("policy_action", self.policy_action, np.float32, self.action.shape)
        array("reward", self.reward, np.float32, (steps,))
        for name in ("terminated", "truncated", "intervened", "gripper_toggled"):
            array(name, getattr(self, name), bool, (steps,))
        for name in ("terminated", "truncated"):
            early = np.nonzero(getattr(self, name)[:-1])[0]
            if len(early):
                bad(name, f"only the last step may be {name}, but step(s) {early[:10].tolist()} are "
                          f"(of {steps})")
        if not (self.terminated[-1] or self.truncated[-1]):
            bad("terminated", "the last step must end the episode: terminated (task over) or truncated "
                              "(time limit / operator stop)")
        array("timestamp", self.timestamp, np.float64, (steps + 1,))
        if np.any(np.diff(self.timestamp) < 0):
            bad("timestamp", "must not decrease from one observation to the next")
        if not isinstance(self.reward_sources, (list, tuple)) or not self.reward_sources:
            bad("reward_sources", f"must be a non-empty list of strings, got {self.reward_sources!r}")
        if len(self.reward_sources) > 256:
            bad("reward_sources", f"at most 256 sources fit uint8 codes, got {len(self.reward_sources)}")
        for source in self.reward_sources:
            if not isinstance(source, str) or not source:
                bad("reward_sources", f"entries must be non-empty strings, got {source!r}")
        if len(set(self.reward_sources)) != len(self.reward_sources):
            bad("reward_sources", f"entries must be unique, got {list(self.reward_sources)}")
        array("reward_source", self.reward_source, np.uint8, (steps,))
        if np.any(self.reward_source >= len(self.reward_sources)):
            bad("reward_source", f"codes must index reward_sources ({len(self.reward_sources)} entries), "
                                 f"got code {int(self.reward_source.max())}")

        if not isinstance(self.observations, dict) or not self.observations:
            bad("observations", "must be a non-empty dict of flat keys -> arrays (T+1, ...)")
        for key, value in self.observations.items():
            name = f"observations[{key!r}]"
            if not isinstance(key, str) or not key or key in RESERVED_KEYS or key.startswith("/") \
                    or ".." in key or "\\" in key:
                bad(name, f"invalid key; keys are flat observation names like 'proprio' or 'images/front' "
                          f"and must not be one of {sorted(RESERVED_KEYS)}")
            if not isinstance(value, np.ndarray):
                bad(name, f"must be a numpy array, got {type(value).__name__}")
            if value.ndim < 1 or len(value) != steps + 1:
                bad(name, f"must hold T+1={steps + 1} frames (the final observation included), got shape "
                          f"{value.shape}")
            if key.startswith(IMAGE_PREFIX):
                if value.dtype != np.uint8:
                    bad(name, f"images must be uint8 (T+1, H, W, 3), got dtype {value.dtype}")
                if value.ndim != 4 or value.shape[-1] != 3:
                    bad(name, f"images must be uint8 (T+1, H, W, 3), got shape {value.shape}")
            elif value.dtype.kind not in "fiub":
                bad(name, f"must be a numeric array, got dtype {value.dtype}")
            elif value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                bad(name, "has non-finite values (NaN or inf)")

        if self.policy_version is not None and (isinstance(self.policy_version, bool)
                                                or not isinstance(self.policy_version, (int, str))):
            bad("policy_version", f"must be an int, a string or None, got {self.policy_version!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            bad("seed", f"must be an int or None, got {self.seed!r}")
        if self.robot_profile is not None and not isinstance(self.robot_profile, str):
            bad("robot_profile", f"must be a string or None, got {self.robot_profile!r}")
        if self.success is not None and not isinstance(self.success, bool):
            bad("success", f"must be True, False or None, got {self.success!r}")
        if self.operator_label is not None and self.operator_label not in OPERATOR_LABELS:
            bad("operator_label", f"must be one of {OPERATOR_LABELS} or None, got {self.operator_label!r}")
        if not isinstance(self.extra, dict):
            bad("extra", f"must be a dict, got {type(self.extra).__name__}")
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as err:
            bad("extra", f"must be JSON-serialisable (plain dicts, lists, strings, numbers): {err}")

    # -- conversion ------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the `.npz` file, `meta` included."""
        arrays: dict[str, np.ndarray] = dict(self.observations)
        arrays.update(action=self.action, reward=self.reward, terminated=self.terminated,
                      truncated=self.truncated, intervened=self.intervened,
                      gripper_toggled=self.gripper_toggled, timestamp=self.timestamp,
                      reward_source=self.reward_source)
        if self.policy_action is not None:
            arrays["policy_action"] = self.policy_action
        meta = json.dumps(self.metadata(), allow_nan=False).encode("utf-8")
        arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
        return arrays


# -- files ---------------------------------------------------------------------------------------------
def _write_npz(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    np.savez(f, **arrays)


def save_episode(episode: Episode, directory: str | Path) -> Path:
    """Validate `episode` and write it atomically to `directory/episode.file_name()`; returns the path.
    Never overwrites: an existing file of that name raises FileExistsError."""
    episode.validate()
    directory = Path(directory)
    path = directory / episode.file_name()
    if path.exists():
        raise FileExistsError(f"episode file {path} already exists; episodes are never overwritten")
    arrays = episode.to_arrays()
    atomic_write(path, lambda f: _write_npz(f, arrays))
    return path


def _bad_file(path: Path | str, why: object) -> ValueError:
    where = f"episode file {path}" if isinstance(path, Path) else f"episode {path}"
    return ValueError(f"{where} is unreadable, truncated or not a robot_rl episode: {why}")


def _read_meta(data, path: Path | str) -> dict[str, Any]:
    if "meta" not in data:
        raise _bad_file(path, f"it has no 'meta' key (keys: {sorted(data)[:12]})")
    meta = json.loads(bytes(data["meta"]).decode("utf-8"))
    if not isinstance(meta, dict) or "format_version" not in meta:
        raise _bad_file(path, "its 'meta' holds no format_version")
    if meta["format_version"] != FORMAT_VERSION:
        raise _bad_file(path, f"format_version {meta['format_version']}; this robot_rl reads "
                              f"format_version {FORMAT_VERSION}")
    return meta


# What numpy/zipfile/json raise on a torn, corrupt or foreign file (a lone .npy gives an ndarray, not an
# NpzFile: AttributeError/TypeError).
_READ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, TypeError,
                AttributeError)


@contextmanager
def _reading(path: Path | str):
    """Any failure while reading `path` becomes one ValueError that names the file."""
    try:
        yield
    except ValueError as err:
        if str(err).startswith((f"episode file {path}", f"episode {path}")):
            raise
        raise _bad_file(path, err) from err
    except _READ_ERRORS as err:
        raise _bad_file(path, f"{type(err).__name__}: {err}") from err


def read_metadata(path: str | Path,
                  arrays: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata of an episode file and the named (small) arrays, without reading the images."""
    path = Path(path)
    with _reading(path), np.load(path, allow_pickle=False) as data:
        meta = _read_meta(data, path)
        return meta, {name: data[name] for name in arrays}


def load_episode(path: str | Path) -> Episode:
    """Read and validate one episode file (ValueError naming the path if it is corrupt or foreign)."""
    path = Path(path)
    with _reading(path), np.load(path, allow_pickle=False) as data:
        return episode_from_arrays(data, path)


def episode_from_arrays(data, path: Path | str) -> Episode:
    """An Episode from its arrays (`Episode.to_arrays()`: a file's, or an actor's message), checked
    exactly as a file is; `path` names where they came from in errors."""
    with _reading(path):
        meta = _read_meta(data, path)
        obs_keys = list(meta["observations"])
        missing = [k for k in (*obs_keys, *REQUIRED_KEYS) if k not in data]
        if meta.get("has_policy_action") and "policy_action" not in data:
            missing.append("policy_action")
        if missing:
            raise _bad_file(path, f"missing array(s) {missing}")
        unknown = sorted(set(data) - set(obs_keys) - RESERVED_KEYS)
        if unknown:
            raise _bad_file(path, f"array(s) {unknown} are not listed in its metadata")
        episode = Episode(
            task=meta["task"],
            observations={k: data[k] for k in obs_keys},
            action=data["action"],
            reward=data["reward"],
            terminated=data["terminated"],
            truncated=data["truncated"],
            intervened=data["intervened"],
            gripper_toggled=data["gripper_toggled"],
            timestamp=data["timestamp"],
            reward_source=data["reward_source"],
            reward_sources=list(meta["reward_sources"]),
            policy_action=data["policy_action"] if "policy_action" in data else None,
            actor_id=meta["actor_id"],
            policy_version=meta["policy_version"],
            seed=meta["seed"],
            robot_profile=meta["robot_profile"],
            success=meta["success"],
            operator_label=meta["operator_label"],
            created=meta["created"],
            episode_id=meta["episode_id"],
            extra=meta["extra"],
        )
    try:
        episode.validate()
        if meta["length"] != episode.length:
            raise ValueError(f"metadata says length {meta['length']}, the arrays hold {episode.length} steps")
        for key, spec in meta["observations"].items():
            value = episode.observations[key]
            if list(value.shape[1:]) != spec["shape"] or str(value.dtype) != spec["dtype"]:
                raise ValueError(f"observation {key!r} is {value.dtype} {value.shape[1:]}, its metadata says "
                                 f"{spec['dtype']} {tuple(spec['shape'])}")
    except ValueError as err:
        raise _bad_file(path, err) from err
    return episode


def episode_files(directory: str | Path) -> list[Path]:
    """The episode files of a directory (not recursive), sorted by name, i.e. by creation time.
    Temp files of interrupted writes (`*.tmp`) are not episodes and are left out."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"episode directory {directory} does not exist or is not a directory")
    return sorted(p for p in directory.iterdir() if p.suffix == SUFFIX and p.is_file())


def iter_episodes(directory: str | Path):
    """Load the episodes of a directory one at a time, oldest first."""
    for path in episode_files(directory):
        yield path, load_episode(path)
