"""Episodes (robot_rl/episodes.py) into replay buffers: a directory of episode files as demos, and an
actor's episode as it arrives at the learner."""

from __future__ import annotations

from pathlib import Path

from robot_rl.episodes import Episode, episode_files, load_episode, read_metadata
from robot_rl.replay import ReplayBuffer


def episode_to_replay(episode: Episode, buffer: ReplayBuffer) -> None:
    """Append an episode to a ReplayBuffer (executed actions, intervention and gripper-toggle flags; the
    end flags of its last step)."""
    spec = episode.obs_spec
    if spec.shapes != buffer.obs_spec.shapes:
        raise ValueError(f"episode {episode.episode_id} ({episode.task}) has observations {spec.shapes}; the "
                         f"replay buffer stores {buffer.obs_spec.shapes}")
    if episode.action_dim != buffer.action_dim:
        raise ValueError(f"episode {episode.episode_id} ({episode.task}) has {episode.action_dim}-d actions; "
                         f"the replay buffer stores {buffer.action_dim}-d actions")
    frames = [episode.frame(t) for t in range(episode.length + 1)]
    buffer.add_episode(frames, episode.action, episode.reward, bool(episode.terminated[-1]),
                       bool(episode.truncated[-1]), intervened=episode.intervened,
                       gripper_toggled=episode.gripper_toggled)


def load_replay_buffer(directory: str | Path, capacity: int | None = None, *, task: str | None = None,
                       success_only: bool = False, buffer: ReplayBuffer | None = None) -> ReplayBuffer:
    """Every episode file of `directory` (oldest first) in a ReplayBuffer: `buffer` if given, else a new
    one of `capacity` frames (default: exactly enough for all of them). `task` refuses episodes of
    another task; `success_only` skips episodes not marked successful (demos)."""
    paths = episode_files(directory)
    selected: list[Path] = []
    frames = 0
    for path in paths:
        meta, _ = read_metadata(path)
        if task is not None and meta["task"].split("/", 1)[-1] != task.split("/", 1)[-1]:
            raise ValueError(f"episode file {path} is of task {meta['task']!r}, not {task!r}")
        if success_only and meta["success"] is not True:
            continue
        selected.append(path)
        frames += meta["length"] + 1
    if not selected:
        raise ValueError(f"no {'successful ' if success_only else ''}episodes in {directory}")
    for path in selected:
        episode = load_episode(path)
        if buffer is None:
            buffer = ReplayBuffer(max(2, capacity or frames), episode.obs_spec, episode.action_dim)
        episode_to_replay(episode, buffer)
    return buffer
