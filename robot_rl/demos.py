"""The demos a run starts from: a replay file, a directory of episode files, or episodes recorded
now by a scripted policy (the task's expert, or the user's `demo_policy`)."""

from __future__ import annotations

from pathlib import Path

from robot_rl.envs import demo_policy, make_env
from robot_rl.replay import ObsSpec, ReplayBuffer
from robot_rl.rollout import record_demos
from robot_rl.run_config import TrainConfig


def _history_hint(stored: dict, expected: dict, action_history: int) -> str:
    """Why a demo file lacks (or has) the last-commands observation, and how to make them agree."""
    from robot_rl.action_history import KEY

    if (KEY in stored) == (KEY in expected):
        return ""
    return (f"; the run observes {KEY!r} (action_history={action_history}) and the demos "
            f"{'do' if KEY in stored else 'do not'}: record them with `robot-rl teleop --action-history "
            f"{action_history}` or set action_history to what they were recorded with")


def initial_demos(cfg: TrainConfig, obs_spec: ObsSpec, action_dim: int) -> ReplayBuffer | None:
    if cfg.demo_path is not None:
        if Path(cfg.demo_path).is_dir():
            from robot_rl.episode_replay import load_replay_buffer

            demos = load_replay_buffer(cfg.demo_path, task=cfg.env.id, success_only=True)
        else:
            demos = ReplayBuffer.load(cfg.demo_path)
        if demos.obs_spec.shapes != obs_spec.shapes or demos.action_dim != action_dim:
            raise ValueError(
                f"demos {cfg.demo_path} do not fit env {cfg.env.id} ({cfg.obs_mode}): they store "
                f"observations {demos.obs_spec.shapes} and {demos.action_dim}-d actions, the env has "
                f"{obs_spec.shapes} and {action_dim}-d actions"
                + _history_hint(demos.obs_spec.shapes, obs_spec.shapes, cfg.action_history))
        return demos
    if cfg.num_demos == 0:
        return None
    env = make_env(cfg, in_process=True)
    try:
        return record_demos(env, demo_policy(cfg, env), cfg.num_demos, seed=10_000_000 + cfg.seed)
    finally:
        env.close()
