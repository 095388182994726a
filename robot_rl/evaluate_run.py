"""`robot-rl evaluate`: a finished (or running) run's policy, evaluated deterministically in the env
that overrides select, e.g. zero-shot on a ROS 2 robot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from robot_rl.agents import make_agent
from robot_rl.envs import make_env
from robot_rl.replay import ObsSpec
from robot_rl.rollout import evaluate
from robot_rl.run_config import TrainConfig
from robot_rl.run_dir import RunDir


def evaluate_checkpoint(run_dir: str | Path, overrides: dict[str, Any] | None = None, episodes: int = 20,
                        seed: int = 2_000_000_000) -> dict[str, Any]:
    """A run's policy (its checkpoint.pt and config.json), evaluated deterministically in the env that
    `overrides` select: e.g. `{"robot": {"enabled": True}}` for zero-shot success on a ROS 2 robot."""
    from robot_rl.config import merge

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() or not (run_dir / "checkpoint.pt").exists():
        raise ValueError(f"{run_dir} is not a run directory (needs config.json and checkpoint.pt)")
    values = merge(json.loads((run_dir / "config.json").read_text()), overrides or {})
    values.update(reward={})  # the task's own success, with the run's policy
    cfg = TrainConfig.from_dict(values)
    torch.set_num_threads(cfg.torch_threads)
    spec_env = make_env(cfg, in_process=True)  # the observation layout the agent was built for
    obs, _ = spec_env.reset(seed=seed)
    obs_spec, action_dim = ObsSpec.from_obs(obs), spec_env.action_space.shape[0]
    spec_env.close()
    agent = make_agent(obs_spec, action_dim, cfg.agent)
    agent.load_state_dict(RunDir.read_checkpoint(run_dir / "checkpoint.pt")["agent"])
    env = make_env(cfg, in_process=not cfg.robot.enabled, evaluation=True)
    try:
        result = evaluate(agent, env, episodes, seed)
    finally:
        env.close()
    return {"run": str(run_dir), "episodes": episodes, "robot": cfg.robot.enabled, **result}
