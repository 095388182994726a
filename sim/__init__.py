"""MuJoCo manipulation tasks registered as gymnasium environments, scripted experts and domain
randomisation. `sim.make("PickCube-v0", obs_mode="pixels")` or `gymnasium.make("robot_rl/PickCube-v0")`.
"""

from __future__ import annotations

import os

# Offscreen GL before mujoco is imported: EGL works headless on software Mesa (no display, no GPU).
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402

from sim.tasks import ManipulationEnv, PegInsertionEnv, PickCubeEnv, TaskConfig  # noqa: E402

TASKS: dict[str, type[ManipulationEnv]] = {
    "PickCube-v0": PickCubeEnv,
    "PegInsertion-v0": PegInsertionEnv,
}
NAMESPACE = "robot_rl"

for _task_id, _cls in TASKS.items():
    _full_id = f"{NAMESPACE}/{_task_id}"
    if _full_id not in gym.registry:
        gym.register(id=_full_id, entry_point=f"{_cls.__module__}:{_cls.__name__}",
                     max_episode_steps=None, disable_env_checker=True)


def make(task_id: str, **config) -> ManipulationEnv:
    """Create a task by id ("PickCube-v0" or "robot_rl/PickCube-v0") with TaskConfig overrides."""
    name = task_id.split("/", 1)[1] if task_id.startswith(f"{NAMESPACE}/") else task_id
    if name not in TASKS:
        raise ValueError(f"unknown task id {task_id!r}; available: {sorted(TASKS)}")
    return TASKS[name](**config)


__all__ = ["TASKS", "TaskConfig", "make"]
