"""Labelled camera frames for training success classifiers: `FrameDataset` (one .npz, written
atomically) and a recorder that labels simulator frames with the task's ground-truth success.

On hardware the same dataset comes from operator keys (HIL-SERL records ~200 positive frames, holding
the object in the success state, and 2-3x as many negatives); in simulation the scripted expert, with
action noise, fails often enough for negatives, and keeps going after success for positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_rl.files import atomic_write


@dataclass
class FrameDataset:
    images: dict[str, np.ndarray]  # camera: uint8 (N, H, W, 3)
    labels: np.ndarray  # bool (N,): the task succeeded in this frame
    episode: np.ndarray  # int (N,): frames of one episode stay on one side of a train/validation split
    task: str = ""

    def __post_init__(self) -> None:
        n = len(self.labels)
        if not self.images:
            raise ValueError("FrameDataset needs at least one camera")
        for camera, frames in self.images.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != n or frames.shape[3] != 3:
                raise ValueError(f"FrameDataset: camera {camera!r} must hold uint8 (N={n}, H, W, 3) frames, "
                                 f"got {frames.dtype} {frames.shape}")
        if self.episode.shape != (n,):
            raise ValueError(f"FrameDataset: episode must have shape ({n},), got {self.episode.shape}")
        self.labels = np.asarray(self.labels, bool)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(sorted(self.images))

    def subset(self, mask: np.ndarray) -> FrameDataset:
        return FrameDataset({c: f[mask] for c, f in self.images.items()}, self.labels[mask], self.episode[mask], self.task)

    @staticmethod
    def concat(*datasets: FrameDataset) -> FrameDataset:
        """One dataset of several (same cameras and frame size); episode ids are renumbered so that
        episodes of different files stay apart in the train/validation split."""
        first = datasets[0]
        for other in datasets[1:]:
            shapes = {c: f.shape[1:] for c, f in other.images.items()}
            if shapes != {c: f.shape[1:] for c, f in first.images.items()}:
                raise ValueError(f"cannot combine frame datasets with cameras/sizes {shapes} and "
                                 f"{ {c: f.shape[1:] for c, f in first.images.items()} }")
        episodes, offset = [], 0
        for d in datasets:
            _, ids = np.unique(d.episode, return_inverse=True)
            episodes.append(ids + offset)
            offset += int(ids.max()) + 1 if len(ids) else 0
        return FrameDataset({c: np.concatenate([d.images[c] for d in datasets]) for c in first.images},
                            np.concatenate([d.labels for d in datasets]), np.concatenate(episodes), first.task)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {f"images/{c}": f for c, f in self.images.items()}
        arrays.update(labels=self.labels, episode=self.episode, task=np.array(self.task))
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FrameDataset:
        try:
            with np.load(path) as data:
                images = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("images/")}
                return cls(images, data["labels"], data["episode"], str(data["task"]))
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"cannot read a frame dataset from {path}: {err}") from err


def record_sim_frames(task: str, episodes: int, image_size: int = 64, cameras: tuple[str, ...] = ("front", "wrist"),
                      seed: int = 0, noise_levels: tuple[float, ...] = (0.0, 0.3, 0.6, 1.0),
                      steps_after_success: int = 8) -> FrameDataset:
    """Scripted-expert episodes at rotating action-noise levels, every frame labelled with the sim's
    ground-truth success; after a success the expert goes on for `steps_after_success` more frames."""
    import sim
    from sim.experts import expert_for

    env = sim.make(task, obs_mode="pixels", image_size=image_size, cameras=cameras)
    rng = np.random.default_rng(seed)
    frames: dict[str, list] = {c: [] for c in cameras}
    labels, episode_ids = [], []
    try:
        for episode in range(episodes):
            expert = expert_for(task, env, noise_std=noise_levels[episode % len(noise_levels)], rng=rng)
            obs, _ = env.reset(seed=seed * 100_003 + episode)
            expert.reset()
            after = 0
            for _ in range(env.config.episode_steps + steps_after_success):
                obs, _, _, _, info = env.step(expert.act(obs))
                for c in cameras:
                    frames[c].append(obs["images"][c])
                labels.append(bool(info["success"]))
                episode_ids.append(episode)
                after += int(info["success"])
                if after > steps_after_success:
                    break
    finally:
        env.close()
    return FrameDataset({c: np.stack(f) for c, f in frames.items()}, np.array(labels), np.array(episode_ids), task)
