"""Teacher-student distillation (sim-to-real recipe e): a policy trained from simulator state (the
teacher, cheap to train) teaches a policy that sees only what a real robot has (the student: camera
images + proprio), by DAgger: the student drives (the teacher drives at first, handing over linearly),
every state it visits is labelled with the teacher's action, and the student regresses onto the labels.

The student is a SACAgent whose encoder and actor are trained here (its critics are left for a later
fine-tuning run to warm up), so its checkpoint evaluates, deploys and warm-starts like any SAC run.
The teacher reads the simulator's privileged state (`obs["privileged"]`) as its object state. As an
agent: `act` is the behaviour policy (teacher with the share that falls to 0, else the student), the
replay stores what was executed, and `update` labels every sampled state with the teacher's action.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.action_history import KEY as PREVIOUS_ACTIONS
from robot_rl.agents.base import Agent, agent_config
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class DistillConfig(SACConfig):
    """The student's SAC fields (encoder, actor, augmentation, precision) plus DAgger's."""

    name: str = "distill"
    utd: int = 1  # regression steps per environment step
    teacher: str | None = None  # run directory of a state-observation SAC run (config.json + checkpoint.pt)
    handover_steps: int = 1_000  # env steps over which the teacher's share of driving falls from 1 to 0
    lr: float = 3e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.handover_steps, int) and self.handover_steps >= 0):
            raise ValueError(f"DistillConfig.handover_steps must be an integer >= 0, got {self.handover_steps!r}")
        if not self.lr > 0:
            raise ValueError(f"DistillConfig.lr must be > 0, got {self.lr!r}")
        if self.teacher is None:
            raise ValueError("DistillConfig.teacher must name a state run directory (agent.name=distill needs agent.teacher=...)")

    def observes_privileged(self) -> bool:
        return True  # the teacher reads the simulator's state


class Teacher:
    """A state policy acting on a pixel env's privileged state, deterministically."""

    def __init__(self, run_dir: str | Path, action_dim: int):
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").exists() or not (run_dir / "checkpoint.pt").exists():
            raise ValueError(f"agent.teacher: {run_dir} is not a run directory (needs config.json and checkpoint.pt)")
        values = json.loads((run_dir / "config.json").read_text())
        if values.get("obs_mode", "state") != "state":
            raise ValueError(f"agent.teacher: {run_dir} is a {values.get('obs_mode')} run; the teacher must "
                             f"be a run from state")
        self._agent_config = agent_config(values.get("agent", {}))
        self._history = int(values.get("action_history", 0))
        state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["agent"]
        self._state, self._action_dim = state.get("sac", state), action_dim
        self.agent: SACAgent | None = None

    def _inputs(self, obs: dict[str, np.ndarray], batched: bool) -> dict[str, np.ndarray]:
        if "privileged" not in obs:
            raise ValueError("the teacher needs the simulator's privileged state: the student's env must have "
                             "privileged=True")
        teacher_obs = {"proprio": obs["proprio"], "object": obs["privileged"]}
        if self._history:  # a teacher that reads its last commands: the student's env must record as many
            if PREVIOUS_ACTIONS not in obs or obs[PREVIOUS_ACTIONS].shape[-1] != self._history * self._action_dim:
                raise ValueError(f"agent.teacher observes its last {self._history} actions: set the student's "
                                 f"action_history={self._history} as well")
            teacher_obs[PREVIOUS_ACTIONS] = obs[PREVIOUS_ACTIONS]
        if self.agent is None:  # built on first use, from the observation it will read
            one = {k: v[0] for k, v in teacher_obs.items()} if batched else teacher_obs
            self.agent = SACAgent(ObsSpec.from_obs(one), self._action_dim, self._agent_config)
            try:
                self.agent.load_state_dict(self._state)
            except Exception as err:
                raise ValueError(f"agent.teacher does not fit this task's state observation: {err}") from err
        return teacher_obs

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        inputs = self._inputs(obs, batched=False)
        return self.agent.act(inputs, deterministic=True)

    @torch.no_grad()
    def label(self, obs: dict[str, np.ndarray]) -> torch.Tensor:
        """The teacher's deterministic actions for a batch of flat observations."""
        inputs = self._inputs(obs, batched=True)
        features = self.agent.features(self.agent.as_tensors(inputs))
        return self.agent.actor.deterministic(features).float()


class DistillAgent(Agent):
    def __init__(self, obs_spec: ObsSpec, action_dim: int, config: DistillConfig, device: str = "cpu"):
        self.config = config
        self.student = SACAgent(obs_spec, action_dim, config, device)
        self.optimizer = make_student_optimizer(self.student, config.lr)
        self._action_dim = action_dim
        self._teacher: Teacher | None = None  # loaded when first needed: evaluation never needs it
        self.behaviour_steps = 0
        self._rng = np.random.default_rng(0)

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = Teacher(self.config.teacher, self._action_dim)
        return self._teacher

    @property
    def updates(self) -> int:
        return self.student.updates

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """Deterministic: the student. Otherwise DAgger's behaviour: the teacher with a share that falls
        linearly from 1 to 0 over handover_steps calls, else the student."""
        if deterministic:
            return self.student.act(obs, deterministic=True)
        handover = self.config.handover_steps
        share = 1.0 - self.behaviour_steps / handover if handover else 0.0
        self.behaviour_steps += 1
        if self._rng.uniform() < share:
            return self.teacher.act(obs)
        return self.student.act(obs, deterministic=True)

    def update(self, batches: list[Batch], actor: bool = True) -> dict[str, float]:
        """One regression step per batch onto the teacher's labels of the batch's states."""
        metrics: dict[str, float] = {}
        for batch in batches:
            metrics = distill_update(self.student, self.optimizer, batch, self.teacher.label(batch.obs))
        return metrics

    def policy_modules(self) -> dict[str, torch.nn.Module]:
        return self.student.policy_modules()

    def state_dict(self) -> dict:
        return {"sac": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                "behaviour_steps": self.behaviour_steps, "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["sac"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.behaviour_steps = int(state["behaviour_steps"])
        self._rng.bit_generator.state = state["rng"]


def make_student_optimizer(student: SACAgent, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(list(student.encoder.parameters()) + list(student.actor.parameters()), lr=lr)


def distill_update(student: SACAgent, optimizer: torch.optim.Optimizer, batch: Batch,
                   target: torch.Tensor | None = None) -> dict[str, float]:
    """One regression step of the student's deterministic action onto `target` (default: the batch's
    actions), with the student's image augmentation, in the student's precision (bf16 where the
    hardware has it: the conv net's forward and backward dominate a step, and run 1.6x faster)."""
    if target is None:
        target = torch.as_tensor(batch.action, device=student.device).clamp(-1.0, 1.0)
    with student.autocast():
        prediction = student.actor.deterministic(student.features(student.as_tensors(batch.obs), augment=True))
    loss = F.mse_loss(prediction.float(), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    student.updates += 1
    return {"distill_loss": float(loss.item())}
