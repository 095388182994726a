"""Teacher-student distillation (sim-to-real recipe e): a policy trained from simulator state (the
teacher, cheap to train) teaches a policy that sees only what a real robot has (the student: camera
images + proprio), by DAgger: the student drives (the teacher drives at first, handing over linearly),
every state it visits is labelled with the teacher's action, and the student regresses onto the labels.

The student is a SACAgent whose encoder and actor are trained here (its critics are left for a later
fine-tuning run to warm up), so its checkpoint evaluates, deploys and warm-starts like any SAC run.
The teacher reads the simulator's privileged state (`obs["privileged"]`) as its object state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.action_history import KEY as PREVIOUS_ACTIONS
from robot_rl.agents.sac import SACAgent
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class DistillConfig:
    teacher: str | None = None  # run directory of a state-observation SAC run (config.json + checkpoint.pt)
    handover_steps: int = 1_000  # env steps over which the teacher's share of driving falls from 1 to 0
    updates_per_step: int = 1
    lr: float = 3e-4

    def __post_init__(self) -> None:
        for name in ("handover_steps", "updates_per_step"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"DistillConfig.{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"DistillConfig.lr must be > 0, got {self.lr!r}")


class Teacher:
    """A state policy acting on a pixel env's privileged state, deterministically."""

    def __init__(self, run_dir: str | Path, task: str, action_dim: int):
        from robot_rl.train import TrainConfig

        run_dir = Path(run_dir)
        if not (run_dir / "config.json").exists() or not (run_dir / "checkpoint.pt").exists():
            raise ValueError(f"distill.teacher: {run_dir} is not a run directory (needs config.json and checkpoint.pt)")
        values = json.loads((run_dir / "config.json").read_text())
        values["reward"] = {}
        cfg = TrainConfig.from_dict(values)
        if cfg.obs_mode != "state" or cfg.task != task:
            raise ValueError(f"distill.teacher: {run_dir} is a {cfg.task} ({cfg.obs_mode}) run; the teacher must be "
                             f"a {task} run from state")
        state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["agent"]
        self._cfg, self._state, self._action_dim = cfg, state, action_dim
        self.agent: SACAgent | None = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if "privileged" not in obs:
            raise ValueError("the teacher needs the simulator's privileged state: the student's env must have "
                             "privileged=True")
        teacher_obs = {"proprio": obs["proprio"], "object": obs["privileged"]}
        history = self._cfg.action_history
        if history:  # a teacher that reads its last commands: the student's env must record as many
            if PREVIOUS_ACTIONS not in obs or obs[PREVIOUS_ACTIONS].shape[-1] != history * self._action_dim:
                raise ValueError(f"distill.teacher observes its last {history} actions: set the student's "
                                 f"action_history={history} as well")
            teacher_obs[PREVIOUS_ACTIONS] = obs[PREVIOUS_ACTIONS]
        if self.agent is None:  # built on first use, from the observation it will read
            self.agent = SACAgent(ObsSpec.from_obs(teacher_obs), self._action_dim, self._cfg.agent)
            try:
                self.agent.load_state_dict(self._state)
            except Exception as err:
                raise ValueError(f"distill.teacher does not fit this task's state observation: {err}") from err
        return self.agent.act(teacher_obs, deterministic=True)


def make_student_optimizer(student: SACAgent, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(list(student.encoder.parameters()) + list(student.actor.parameters()), lr=lr)


def distill_update(student: SACAgent, optimizer: torch.optim.Optimizer, batch: Batch) -> dict[str, float]:
    """One regression step of the student's deterministic action onto the teacher's (the batch's
    actions), with the student's image augmentation, in the student's precision (bf16 where the
    hardware has it: the conv net's forward and backward dominate a step, and run 1.6x faster)."""
    obs = student.as_tensors(batch.obs)
    target = torch.as_tensor(batch.action, device=student.device).clamp(-1.0, 1.0)
    with student.autocast():
        prediction = student.actor.deterministic(student.features(obs, augment=True))
    loss = F.mse_loss(prediction.float(), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    student.updates += 1
    return {"distill_loss": float(loss.item())}
