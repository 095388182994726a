"""What every learning agent is, and the registry that names them.

An agent is a set of losses over replay batches plus a policy. The training loop, the distributed
learner and the actors use only this interface, so a new algorithm is one module with a config
dataclass (a subclass of `AgentConfig`) and an `Agent` subclass, plus one `register_agent` line in
`robot_rl/agents/__init__.py`.

- `act(obs, deterministic)`: one action in [-1, 1] for one flat observation (no batch dimension);
  `deterministic=True` is the evaluation/deployment policy.
- `update(batches, actor)`: one update call on `len(batches)` batches (the loop passes `utd` of them
  per environment step; offline agents get one); returns scalar metrics.
- `state_dict()` / `load_state_dict()`: everything a checkpoint must hold to resume exactly.
- `policy_state()` / `load_policy_state()`: exactly what an actor needs to act, as float32 numpy
  arrays (shipped to actors over the transport, never pickled).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class AgentConfig:
    """Fields every agent has: its registered `name` and how the loop feeds it."""

    name: str = "sac"
    utd: int = 4  # update batches per environment step (online agents)
    batch_size: int = 256
    n_step: int = 3  # n-step returns over the same episode (1: plain one-step TD)
    discount: float = 0.97

    def __post_init__(self) -> None:
        kind = type(self).__name__
        if not isinstance(self.utd, int) or not 1 <= self.utd <= 100:
            raise ValueError(f"{kind}.utd must be an int in [1, 100], got {self.utd!r}")
        if not isinstance(self.n_step, int) or not 1 <= self.n_step <= 20:
            raise ValueError(f"{kind}.n_step must be an int in [1, 20], got {self.n_step!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"{kind}.batch_size must be an int >= 2, got {self.batch_size!r}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"{kind}.discount must be in (0, 1), got {self.discount!r}")

    def observes_privileged(self) -> bool:
        """Whether training needs the simulator's privileged state in the observation."""
        return False

    def toggles_gripper(self) -> bool:
        """Whether the agent chooses the gripper discretely (the env then runs its gripper in toggle mode)."""
        return False

    @classmethod
    def resolve(cls, values: dict[str, Any]) -> type[AgentConfig]:
        """The registered config class `values["name"]` selects (for robot_rl.config.build)."""
        return agent_spec(values.get("name", "sac")).config_class()


class Agent:
    """Base of every agent: the interface above, with defaults only where one is right for all."""

    offline = False  # True: trained on demos/datasets only (no env steps); its config has `updates`
    returns_to_go = False  # True: offline batches carry Monte-Carlo returns (Batch.mc_return)
    updates = 0

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        raise NotImplementedError

    def update(self, batches: list[Batch], actor: bool = True) -> dict[str, float]:
        """By default one `update_batch` per batch (agents whose whole update is one loss step)."""
        metrics: dict[str, float] = {}
        for batch in batches:
            metrics = self.update_batch(batch)
        return metrics

    def update_batch(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def policy_modules(self) -> dict[str, torch.nn.Module]:
        """The modules `act` uses; `policy_state` ships their weights."""
        raise NotImplementedError

    def policy_state(self) -> dict[str, np.ndarray]:
        return {f"{name}.{key}": value.detach().float().cpu().numpy()
                for name, module in self.policy_modules().items() for key, value in module.state_dict().items()}

    def load_policy_state(self, arrays: dict[str, np.ndarray]) -> None:
        for name, module in self.policy_modules().items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: torch.from_numpy(np.array(v))
                                    for k, v in arrays.items() if k.startswith(prefix)})

    def warm_start(self, pretrained: dict, critics: bool = True) -> None:
        """Start from another run's agent state (WSRL); agents that cannot say so."""
        raise ValueError(f"{type(self).__name__} cannot be warm-started; warm_start applies to SAC-family agents")

    def set_anchor_weight(self, weight: float) -> None:
        """Weight of the pull towards a warm start's actor (only agents that warm-start have one)."""


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent: its name and where its config and class live ("module:Name")."""

    name: str
    config: str
    agent: str

    @staticmethod
    def _load(target: str):
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def config_class(self) -> type[AgentConfig]:
        return self._load(self.config)

    def agent_class(self) -> type[Agent]:
        return self._load(self.agent)


AGENTS: dict[str, AgentSpec] = {}


def register_agent(name: str, config: str, agent: str) -> None:
    AGENTS[name] = AgentSpec(name, config, agent)


def agent_spec(name: str) -> AgentSpec:
    if name not in AGENTS:
        raise ValueError(f"unknown agent.name {name!r}; registered agents: {sorted(AGENTS)}")
    return AGENTS[name]


def make_agent(obs_spec: ObsSpec, action_dim: int, config: AgentConfig, device: str = "cpu") -> Agent:
    """The registered agent for `config.name`, built for these observations and actions."""
    spec = agent_spec(config.name)
    if not isinstance(config, spec.config_class()):
        raise ValueError(f"agent.name {config.name!r} needs a {spec.config_class().__name__}, "
                         f"got {type(config).__name__}")
    return spec.agent_class()(obs_spec, action_dim, config, device)


def agent_config(values: dict[str, Any] | None = None, **fields) -> AgentConfig:
    """A registered agent config from plain values: `agent_config(name="crossq", utd=1)`."""
    from robot_rl.config import build

    values = {**(values or {}), **fields}
    return build(AgentConfig.resolve(values), values, "agent")
