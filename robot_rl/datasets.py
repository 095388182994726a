"""Operations on directories of episode files (robot_rl.episodes): list, inspect, merge, split, render
to mp4/gif, and export to the LeRobotDataset v2.1 layout.

Directories are flat: every `*.npz` in one is an episode (temp files of interrupted writes end in `.tmp`
and are ignored). Nothing here overwrites an episode: merge and split copy files atomically and refuse a
name that exists; export writes a new directory and renames it into place when complete.
"""

from __future__ import annotations

import json
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

LEROBOT_VERSION = "v2.1"
LEROBOT_CHUNKS_SIZE = 1000
LEROBOT_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
LEROBOT_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


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


# -- LeRobot export ------------------------------------------------------------------------------------
def lerobot_key(obs_key: str) -> str:
    """Our flat observation key -> LeRobot feature name."""
    if obs_key == "proprio":
        return "observation.state"
    if obs_key == "object":
        return "observation.environment_state"
    if obs_key.startswith(IMAGE_PREFIX):
        return "observation.images." + obs_key[len(IMAGE_PREFIX):]
    return "observation." + obs_key.replace("/", ".")


def _names(extra: dict, key: str, size: int) -> list[str] | None:
    names = extra.get(key)
    if isinstance(names, list) and len(names) == size and all(isinstance(n, str) for n in names):
        return names
    return None


def _feature_stats(values: np.ndarray) -> dict[str, Any]:
    """LeRobot's per-episode statistics of one non-video feature (min/max/mean/std over frames)."""
    keep = values.ndim == 1
    return {"min": np.min(values, axis=0, keepdims=keep).tolist(),
            "max": np.max(values, axis=0, keepdims=keep).tolist(),
            "mean": np.mean(values, axis=0, keepdims=keep).tolist(),
            "std": np.std(values, axis=0, keepdims=keep).tolist(),
            "count": [len(values)]}


def _video_stats(frames: np.ndarray) -> dict[str, Any]:
    """LeRobot's per-episode statistics of a video feature: per channel, scaled to [0, 1], shape (3, 1, 1)."""
    chw = frames.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    out = {name: fn(chw, axis=(0, 2, 3)).reshape(3, 1, 1).tolist()
           for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std))}
    out["count"] = [len(frames)]
    return out


def export_lerobot(source_dir: str | Path, dest_dir: str | Path, fps: float = 10) -> dict[str, Any]:
    """Export the episodes of `source_dir` (oldest first) to a LeRobotDataset v2.1 directory.

    Layout: meta/info.json, meta/episodes.jsonl, meta/tasks.jsonl, meta/episodes_stats.jsonl,
    data/chunk-XXX/episode_XXXXXX.parquet (pyarrow) and videos/chunk-XXX/observation.images.<camera>/
    episode_XXXXXX.mp4 ('mp4v'). One row per step (T rows): the observation before the step, the action,
    next.reward, next.done (the episode ended after this step), next.truncated, timestamp = frame_index
    / fps; the final observation (frame T) is not exported. Extra columns: complementary_info.intervened
    and complementary_info.gripper_toggled. meta/robot_rl_episodes.jsonl maps each episode_index to our
    episode_id, file, actor, success and wall-clock start time. `dest_dir` must not exist or be empty;
    it is built beside itself and renamed into place when complete. Needs pyarrow (the `data` extra)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError("export_lerobot needs pyarrow: pip install robot_rl[data]") from err
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    source_dir, dest_dir = Path(source_dir), Path(dest_dir)
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise FileExistsError(f"{dest_dir} exists and is not an empty directory; not overwriting")
    paths = episode_files(source_dir)
    if not paths:
        raise ValueError(f"no episodes in {source_dir}")

    # Check the whole set before writing anything.
    metas = [read_metadata(p)[0] for p in paths]
    first_sig = _signature(metas[0])
    for path, meta in zip(paths, metas):
        if _signature(meta) != first_sig:
            raise ValueError(f"cannot export episodes with different observation specs to one dataset: "
                             f"{path} has {_describe_signature(_signature(meta))}; {paths[0]} has "
                             f"{_describe_signature(first_sig)}")
    tasks: list[str] = []
    for meta in metas:
        if meta["task"] not in tasks:
            tasks.append(meta["task"])
    obs_specs = metas[0]["observations"]
    extra0 = metas[0]["extra"]
    image_keys = [k for k in obs_specs if k.startswith(IMAGE_PREFIX)]
    vector_keys = [k for k in obs_specs if not k.startswith(IMAGE_PREFIX)]
    action_dim = metas[0]["action_dim"]
    profiles = {m["robot_profile"] for m in metas}

    features: dict[str, dict[str, Any]] = {}
    for key in vector_keys:
        size = int(np.prod(obs_specs[key]["shape"], dtype=np.int64))
        names = _names(extra0, "proprio_names", size) if key == "proprio" else None
        features[lerobot_key(key)] = {"dtype": obs_specs[key]["dtype"], "shape": [size], "names": names}
    for key in image_keys:
        h, w, c = obs_specs[key]["shape"]
        h, w = h + h % 2, w + w % 2  # videos are padded to even sizes
        features[lerobot_key(key)] = {
            "dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
            "info": {"video.fps": float(fps), "video.height": h, "video.width": w, "video.channels": c,
                     "video.codec": "mpeg4", "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                     "has_audio": False}}
    features["action"] = {"dtype": "float32", "shape": [action_dim],
                          "names": _names(extra0, "action_names", action_dim)}
    for name, dtype in (("next.reward", "float32"), ("next.done", "bool"), ("next.truncated", "bool"),
                        ("complementary_info.intervened", "bool"),
                        ("complementary_info.gripper_toggled", "bool"), ("timestamp", "float32"),
                        ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                        ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}

    def column(values: np.ndarray):
        if values.ndim == 1:
            return pa.array(values)
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])

    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    work = dest_dir.with_name(f".{dest_dir.name}.partial-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    try:
        episodes_lines, stats_lines, ours_lines = [], [], []
        index = 0
        for episode_index, path in enumerate(paths):
            episode = load_episode(path)
            steps, chunk = episode.length, episode_index // LEROBOT_CHUNKS_SIZE
            task_index = tasks.index(episode.task)
            done = np.zeros(steps, dtype=bool)
            done[-1] = True
            data: dict[str, np.ndarray] = {}
            for key in vector_keys:
                data[lerobot_key(key)] = episode.observations[key][:steps].reshape(steps, -1)
            data.update({
                "action": episode.action,
                "next.reward": episode.reward,
                "next.done": done,
                "next.truncated": episode.truncated,
                "complementary_info.intervened": episode.intervened,
                "complementary_info.gripper_toggled": episode.gripper_toggled,
                "timestamp": (np.arange(steps) / fps).astype(np.float32),
                "frame_index": np.arange(steps, dtype=np.int64),
                "episode_index": np.full(steps, episode_index, dtype=np.int64),
                "index": np.arange(index, index + steps, dtype=np.int64),
                "task_index": np.full(steps, task_index, dtype=np.int64),
            })
            table = pa.table({name: column(values) for name, values in data.items()})
            data_path = work / LEROBOT_DATA_PATH.format(episode_chunk=chunk, episode_index=episode_index)
            data_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, data_path)
            stats = {name: _feature_stats(values) for name, values in data.items()}
            for key in image_keys:
                frames = _even(episode.observations[key][:steps])
                video_key = lerobot_key(key)
                video_path = work / LEROBOT_VIDEO_PATH.format(episode_chunk=chunk, video_key=video_key,
                                                              episode_index=episode_index)
                video_path.parent.mkdir(parents=True, exist_ok=True)
                _write_mp4(video_path, frames, fps)
                stats[video_key] = _video_stats(frames)
            episodes_lines.append({"episode_index": episode_index, "tasks": [episode.task], "length": steps})
            stats_lines.append({"episode_index": episode_index, "stats": stats})
            ours_lines.append({"episode_index": episode_index, "episode_id": episode.episode_id,
                               "file": path.name, "actor_id": episode.actor_id, "success": episode.success,
                               "operator_label": episode.operator_label,
                               "policy_version": episode.policy_version, "seed": episode.seed,
                               "created": episode.created, "start_timestamp": float(episode.timestamp[0])})
            index += steps

        total = len(paths)
        info = {
            "codebase_version": LEROBOT_VERSION,
            "robot_type": profiles.pop() if len(profiles) == 1 else None,
            "total_episodes": total,
            "total_frames": index,
            "total_tasks": len(tasks),
            "total_videos": total * len(image_keys),
            "total_chunks": (total + LEROBOT_CHUNKS_SIZE - 1) // LEROBOT_CHUNKS_SIZE,
            "chunks_size": LEROBOT_CHUNKS_SIZE,
            "fps": int(fps) if float(fps).is_integer() else fps,
            "splits": {"train": f"0:{total}"},
            "data_path": LEROBOT_DATA_PATH,
            "video_path": LEROBOT_VIDEO_PATH if image_keys else None,
            "features": features,
        }
        meta_dir = work / "meta"
        meta_dir.mkdir()
        (meta_dir / "info.json").write_text(json.dumps(info, indent=4) + "\n")

        def jsonl(name: str, lines: list[dict]) -> None:
            (meta_dir / name).write_text("".join(json.dumps(line) + "\n" for line in lines))

        jsonl("episodes.jsonl", episodes_lines)
        jsonl("tasks.jsonl", [{"task_index": i, "task": t} for i, t in enumerate(tasks)])
        jsonl("episodes_stats.jsonl", stats_lines)
        jsonl("robot_rl_episodes.jsonl", ours_lines)
        if dest_dir.exists():
            dest_dir.rmdir()  # empty (checked above)
        os.replace(work, dest_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"episodes": len(paths), "frames": index, "tasks": tasks,
            "cameras": [lerobot_key(k) for k in image_keys], "dest": str(dest_dir)}
