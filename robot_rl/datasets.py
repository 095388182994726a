"""Operations on directories of episode files (robot_rl.episodes): list, inspect, merge, split, render
to mp4/gif (the LeRobotDataset export is robot_rl/lerobot_export.py).

Directories are flat: every `*.npz` in one is an episode (temp files of interrupted writes end in `.tmp`
and are ignored). Nothing here overwrites an episode: merge and split copy files atomically and refuse a
name that exists; export writes a new directory and renames it into place when complete.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.episodes import (
    IMAGE_PREFIX,
    Episode,
    episode_files,
    load_episode,
    read_metadata,
)
from robot_rl.files import atomic_write


def _task_name(task: str) -> str:
    return task.split("/", 1)[-1]  # "robot_rl/PickCube-v0" and "PickCube-v0" are one task


def _signature(meta: dict) -> tuple:
    """What must agree for episodes to live in one dataset: observation keys/shapes/dtypes, action size."""
    obs = tuple((k, tuple(v["shape"]), v["dtype"]) for k, v in sorted(meta["observations"].items()))
    return obs, meta["action_dim"]


def _describe_signature(sig: tuple) -> str:
    obs, action_dim = sig
    return ", ".join(f"{k} {dtype}{list(shape)}" for k, shape, dtype in obs) + f"; action_dim {action_dim}"


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy `src` to `dest` atomically; never replaces an existing `dest`."""
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; episodes are never overwritten")
    with open(src, "rb") as source:
        atomic_write(dest, lambda f: shutil.copyfileobj(source, f, 1 << 20))


# -- list / inspect ------------------------------------------------------------------------------------
def list_episodes(directory: str | Path) -> list[dict[str, Any]]:
    """One summary row per episode file of `directory`, oldest first: file, task, actor_id, length,
    success, operator_label, interventions, reward_sum, created, episode_id. Reads no images."""
    rows = []
    for path in episode_files(directory):
        meta, arrays = read_metadata(path, ("reward", "intervened"))
        rows.append({
            "file": path.name,
            "task": meta["task"],
            "actor_id": meta["actor_id"],
            "length": meta["length"],
            "success": meta["success"],
            "operator_label": meta["operator_label"],
            "interventions": int(np.count_nonzero(arrays["intervened"])),
            "reward_sum": float(np.sum(arrays["reward"], dtype=np.float64)),
            "created": meta["created"],
            "episode_id": meta["episode_id"],
        })
    return rows


def _stats(value: np.ndarray) -> dict[str, Any]:
    if value.dtype == bool:
        return {"true": int(np.count_nonzero(value))}
    flat = value.astype(np.float64)
    out: dict[str, Any] = {"min": float(flat.min()), "max": float(flat.max()), "mean": float(flat.mean())}
    if value.ndim == 2 and value.shape[1] <= 32:  # per dimension for vectors (actions, proprio)
        out["per_dim"] = {"min": flat.min(0).round(6).tolist(), "max": flat.max(0).round(6).tolist(),
                          "mean": flat.mean(0).round(6).tolist(), "std": flat.std(0).round(6).tolist()}
    return out


def inspect_episode(path: str | Path) -> dict[str, Any]:
    """Everything about one episode: metadata, each array's shape, dtype and statistics (per dimension
    for vectors), and a per-step summary (reward sum, interventions, gripper toggles, reward sources,
    duration, how it ended)."""
    path = Path(path)
    episode = load_episode(path)
    arrays = episode.to_arrays()
    arrays.pop("meta")
    duration = float(episode.timestamp[-1] - episode.timestamp[0])
    sources = episode.sources()
    return {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "meta": episode.metadata(),
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype), **_stats(v)}
                   for k, v in arrays.items()},
        "summary": {
            "steps": episode.length,
            "ended": "terminated" if episode.terminated[-1] else "truncated",
            "reward_sum": float(np.sum(episode.reward, dtype=np.float64)),
            "interventions": episode.num_interventions,
            "gripper_toggles": int(np.count_nonzero(episode.gripper_toggled)),
            "reward_sources": {s: sources.count(s) for s in episode.reward_sources},
            "duration_s": duration,
            "steps_per_s": episode.length / duration if duration > 0 else None,
        },
    }


inspect = inspect_episode


# -- merge / split -------------------------------------------------------------------------------------
def merge(sources: list[str | Path], dest: str | Path) -> dict[str, int]:
    """Copy the episodes of `sources` into `dest` (created if needed; what is already there stays).
    Refuses, before copying anything, episodes of different tasks or observation/action specs (those
    already in `dest` included). Episodes whose episode_id is already in `dest` or was copied from an
    earlier source are skipped. Every episode is fully read (checksums verified) before it is copied.
    Returns {"copied": n, "duplicates": n}."""
    dest = Path(dest)
    if not sources:
        raise ValueError("merge needs at least one source directory")
    existing = episode_files(dest) if dest.is_dir() else []
    reference: tuple[str, tuple, Path] | None = None
    seen: set[str] = set()
    plan: list[Path] = []
    duplicates = 0
    for path, is_dest in [(p, True) for p in existing] + \
                         [(p, False) for src in sources for p in episode_files(src)]:
        meta, _ = read_metadata(path)
        task, sig = _task_name(meta["task"]), _signature(meta)
        if reference is None:
            reference = (task, sig, path)
        elif task != reference[0]:
            raise ValueError(f"refusing to mix tasks: {path} is {meta['task']!r}, {reference[2]} is "
                             f"{reference[0]!r}")
        elif sig != reference[1]:
            raise ValueError(f"refusing to mix observation specs: {path} has {_describe_signature(sig)}; "
                             f"{reference[2]} has {_describe_signature(reference[1])}")
        if meta["episode_id"] in seen:
            duplicates += 0 if is_dest else 1
            continue
        seen.add(meta["episode_id"])
        if not is_dest:
            if (dest / path.name).exists():
                raise FileExistsError(f"{dest / path.name} exists and holds another episode; not overwriting")
            plan.append(path)
    for path in plan:
        load_episode(path)  # a corrupt source fails here, before its copy
        _copy_atomic(path, dest / path.name)
    return {"copied": len(plan), "duplicates": duplicates}


def split(source: str | Path, dest_a: str | Path, dest_b: str | Path, fraction: float = 0.8,
          seed: int = 0) -> dict[str, list[str]]:
    """Split the episodes of `source` (by episode) into `dest_a` (round(fraction * n) of them) and
    `dest_b` (the rest). Deterministic: the same files, fraction and seed give the same split. Files
    are copied; `source` is untouched. Returns {"a": [file names], "b": [file names]}."""
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"split fraction must be in [0, 1], got {fraction!r}")
    source, dest_a, dest_b = Path(source), Path(dest_a), Path(dest_b)
    resolved = {source.resolve(), dest_a.resolve(), dest_b.resolve()}
    if len(resolved) != 3:
        raise ValueError("split needs three different directories (source, dest_a, dest_b)")
    paths = episode_files(source)
    if not paths:
        raise ValueError(f"no episodes in {source}")
    order = np.random.default_rng(seed).permutation(len(paths))
    n_a = round(fraction * len(paths))
    part_a = sorted(paths[i] for i in order[:n_a])
    part_b = sorted(paths[i] for i in order[n_a:])
    for dest, part in ((dest_a, part_a), (dest_b, part_b)):
        taken = [p.name for p in part if (dest / p.name).exists()]
        if taken:
            raise FileExistsError(f"{dest} already holds {taken[:3]}; not overwriting")
    for dest, part in ((dest_a, part_a), (dest_b, part_b)):
        dest.mkdir(parents=True, exist_ok=True)
        for path in part:
            load_episode(path)
            _copy_atomic(path, dest / path.name)
    return {"a": [p.name for p in part_a], "b": [p.name for p in part_b]}


# -- render --------------------------------------------------------------------------------------------
def _image_keys(episode: Episode, camera: str | None, path: Path) -> list[str]:
    keys = [k for k in episode.observations if k.startswith(IMAGE_PREFIX)]
    if not keys:
        raise ValueError(f"episode {path} has no images (observations: {sorted(episode.observations)}); "
                         f"record with obs_mode='pixels' to render it")
    if camera is None:
        return keys
    key = camera if camera.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + camera
    if key not in keys:
        raise ValueError(f"episode {path} has no camera {camera!r}; it has "
                         f"{[k[len(IMAGE_PREFIX):] for k in keys]}")
    return [key]


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad (N, H, W, 3) to even H and W by repeating the last row/column: mp4 encoders drop odd lines."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _side_by_side(episode: Episode, keys: list[str]) -> np.ndarray:
    views = [episode.observations[k] for k in keys]
    height = max(v.shape[1] for v in views)
    if any(v.shape[1] != height for v in views):
        import cv2

        views = [v if v.shape[1] == height else
                 np.stack([cv2.resize(f, (round(f.shape[1] * height / f.shape[0]), height)) for f in v])
                 for v in views]
    return np.concatenate(views, axis=2)


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write RGB uint8 frames (N, H, W, 3), H and W even, as an MPEG-4 Part 2 ('mp4v') video."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                             (frames.shape[2], frames.shape[1]))
    if not writer.isOpened():
        raise OSError(f"OpenCV could not open an mp4v video writer for {path}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # RGB -> BGR
    finally:
        writer.release()


def render(episode_path: str | Path, out: str | Path, camera: str | None = None, fps: float = 10) -> Path:
    """Write an episode's camera images (all T+1 observations) as a video: `.mp4` (OpenCV, 'mp4v') or
    `.gif` (Pillow). With `camera=None` all cameras play side by side. The file appears whole or not at
    all (written beside `out`, then renamed). GIF stores frame times in 10 ms steps and merges identical
    consecutive frames into one longer frame. Returns `out`."""
    episode_path, out = Path(episode_path), Path(out)
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    kind = out.suffix.lower()
    if kind not in (".mp4", ".gif"):
        raise ValueError(f"render writes .mp4 or .gif files, not {out.name!r}")
    episode = load_episode(episode_path)
    frames = _side_by_side(episode, _image_keys(episode, camera, episode_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial{kind}")
    try:
        if kind == ".mp4":
            _write_mp4(tmp, _even(frames), fps)
        else:
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(10, round(1000.0 / fps)), loop=0)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
