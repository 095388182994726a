"""Export a directory of episode files to the LeRobotDataset v2.1 layout (parquet per episode, mp4 per
camera, meta/*.json(l) with stats), written to a new directory renamed into place when complete."""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.datasets import _describe_signature, _even, _signature, _write_mp4
from robot_rl.episodes import IMAGE_PREFIX, episode_files, load_episode, read_metadata

LEROBOT_VERSION = "v2.1"
LEROBOT_CHUNKS_SIZE = 1000
LEROBOT_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
LEROBOT_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


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
