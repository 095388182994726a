"""Implicit Q-learning (IQL) for offline pre-training on a fixed dataset (demos, earlier runs).

- V(s) is fitted by expectile regression to min_i Q_target_i(s, a) over dataset actions (no
  out-of-distribution actions are ever queried);
- Q(s, a) regresses r + gamma^n * mask * V(s');
- the policy is extracted by advantage-weighted regression, exp(beta * (Q - V)) clipped, on the
  deterministic action (squared error), which stays finite for saturated +-1 demo actions.

The actor, critic ensemble and encoder have exactly the shapes of SACAgent's, so `SACAgent.warm_start`
can hand them to online fine-tuning. Measured: from IQL, online SAC unlearns the moment updates begin
(IQL's in-sample critics overestimate off-dataset actions); pre-train with Cal-QL for fine-tuning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.agents.base import Agent
from robot_rl.agents.sac import SACAgent, SACConfig, soft_update
from robot_rl.networks import mlp
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class IQLConfig(SACConfig):
    """SAC's fields (networks, learning rates, feeding) plus the IQL loss's."""

    name: str = "iql"
    expectile: float = 0.7
    beta: float = 3.0  # advantage temperature of the policy extraction
    max_weight: float = 100.0
    updates: int = 20_000
    value_lr: float = 3e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.5 <= self.expectile < 1.0:
            raise ValueError(f"IQLConfig.expectile must be in [0.5, 1), got {self.expectile!r}")
        if not self.beta > 0:
            raise ValueError(f"IQLConfig.beta must be > 0, got {self.beta!r}")
        if not isinstance(self.updates, int) or self.updates < 1:
            raise ValueError(f"IQLConfig.updates must be an int >= 1, got {self.updates!r}")


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared loss: weight `expectile` where diff > 0, 1 - expectile elsewhere."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


class IQLAgent(Agent):
    """Owns a SACAgent (for its networks, optimisers and acting) plus a value network."""

    offline = True

    def __init__(self, obs_spec: ObsSpec, action_dim: int, config: IQLConfig = IQLConfig(), device: str = "cpu"):
        if config.grasp_critic or config.asymmetric:
            raise ValueError("IQL pre-training supports the plain continuous agent (no grasp_critic/asymmetric)")
        self.config = config
        self.sac = SACAgent(obs_spec, action_dim, config, device)
        self.device = self.sac.device
        self.value = mlp(self.sac.encoder.out_features, config.hidden_dims, 1, layer_norm=True).to(self.device)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=config.value_lr)
        self.updates = 0

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        return self.sac.act(obs, deterministic)

    def policy_modules(self) -> dict[str, torch.nn.Module]:
        return self.sac.policy_modules()

    def update_batch(self, batch: Batch) -> dict[str, float]:
        sac, cfg = self.sac, self.config
        obs, next_obs = sac.as_tensors(batch.obs), sac.as_tensors(batch.next_obs)
        action = torch.as_tensor(batch.action, device=self.device).clamp(-1.0, 1.0)
        reward = torch.as_tensor(batch.reward, device=self.device)
        discount = torch.as_tensor(batch.discount, device=self.device)
        with sac.autocast():
            features = sac.features(obs, augment=True)
            with torch.no_grad():
                next_features = sac.features(next_obs, augment=True)
                q_target = sac.critic_target(torch.cat([features, action], -1)).squeeze(-1).float().min(0).values
                next_v = self.value(next_features).squeeze(-1).float()
            # Value: expectile of the target critics' Q over dataset actions.
            v = self.value(features.detach()).squeeze(-1).float()
            value_loss = expectile_loss(q_target - v, cfg.expectile)
            # Critics: TD to the value of the next state.
            q = sac.critic(torch.cat([features, action], -1)).squeeze(-1).float()
            target = reward + sac.config.discount * discount * next_v
            critic_loss = F.mse_loss(q, target.unsqueeze(0).expand_as(q), reduction="none").mean(dim=1).sum()
            # Policy: advantage-weighted regression on the deterministic action.
            weight = torch.exp(cfg.beta * (q_target - v.detach())).clamp(max=cfg.max_weight)
            predicted = sac.actor.deterministic(features.detach())
            actor_loss = (weight * (predicted.float() - action).pow(2).sum(-1)).mean()
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()
        sac.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        sac.critic_optimizer.step()
        soft_update(sac.critic, sac.critic_target, sac.config.tau)
        sac.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        sac.actor_optimizer.step()
        self.updates += 1
        return {"value_loss": value_loss.item(), "critic_loss": critic_loss.item(),
                "actor_loss": actor_loss.item(), "advantage_mean": (q_target - v).detach().mean().item()}

    def state_dict(self) -> dict:
        return {"config": asdict(self.config), "sac": self.sac.state_dict(), "value": self.value.state_dict(),
                "value_optimizer": self.value_optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.sac.load_state_dict(state["sac"])
        self.value.load_state_dict(state["value"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])
        self.updates = int(state["updates"])

