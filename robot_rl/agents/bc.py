"""Behaviour cloning: the baseline every RL result should beat. The same observation encoder and
tanh-squashed actor as SAC, regressed onto the demonstrated actions (mean-squared error of the
deterministic action), so a BC policy can also warm-start an actor of the same shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.agents.base import Agent, AgentConfig
from robot_rl.networks import ObservationEncoder, TanhGaussianActor
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class BCConfig(AgentConfig):
    name: str = "bc"
    hidden_dims: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    updates: int = 5_000  # gradient steps on the demos
    feature_dim: int = 50
    augment_pad: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ValueError(f"BCConfig.hidden_dims must be positive sizes, got {self.hidden_dims!r}")
        if not self.lr > 0:
            raise ValueError(f"BCConfig.lr must be > 0, got {self.lr!r}")
        if not isinstance(self.updates, int) or self.updates < 1:
            raise ValueError(f"BCConfig.updates must be an int >= 1, got {self.updates!r}")


class BCAgent(Agent):
    offline = True

    def __init__(self, obs_spec: ObsSpec, action_dim: int, config: BCConfig = BCConfig(), device: str = "cpu"):
        self.config, self.device = config, torch.device(device)
        self.encoder = ObservationEncoder(obs_spec.shapes, config.feature_dim).to(self.device)
        self.actor = TanhGaussianActor(self.encoder.out_features, config.hidden_dims, action_dim).to(self.device)
        params = list(self.encoder.parameters()) + list(self.actor.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        batch = {k: torch.as_tensor(np.asarray(v)[None], device=self.device) for k, v in obs.items()}
        return self.actor.deterministic(self.encoder(batch))[0].cpu().numpy()

    def policy_modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.encoder, "actor": self.actor}

    def update_batch(self, batch: Batch) -> dict[str, float]:
        obs = {k: torch.as_tensor(v, device=self.device) for k, v in batch.obs.items()}
        target = torch.as_tensor(batch.action, device=self.device).clamp(-1.0, 1.0)
        prediction = self.actor.deterministic(self.encoder(obs, self.config.augment_pad))
        loss = F.mse_loss(prediction, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return {"bc_loss": loss.item()}

    def state_dict(self) -> dict:
        return {"config": asdict(self.config), "encoder": self.encoder.state_dict(),
                "actor": self.actor.state_dict(), "optimizer": self.optimizer.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
