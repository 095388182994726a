"""Calibrated Q-learning (Cal-QL) for offline pre-training before online fine-tuning (WSRL's choice).

SAC's TD loss plus CQL's conservative regulariser, per critic:

    alpha * ( logsumexp_a' Q(s, a') - Q(s, a_data) )

where the logsumexp runs over `num_actions` uniform-random actions and as many actions of the policy
at s and at s' (importance-weighted by their densities, CQL(H)). Cal-QL's calibration: the Q-values of
policy actions inside the logsumexp are floored at the data's Monte-Carlo return-to-go, so the critic
is never pushed below the return the behaviour policy actually achieved. The learned Q is conservative
yet on the scale of real returns, which keeps the switch to online SAC from unlearning (an in-sample
critic such as IQL's overestimates off-dataset actions, and SAC's max-Q actor update exploits that the
moment online updates begin).

The agent *is* a SACAgent plus a loss: the actor and temperature are trained by SAC's own update, so a
Cal-QL checkpoint warm-starts online SAC with every part trained (WSRL: no offline data retained).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.agents.base import Agent
from robot_rl.agents.sac import SACAgent, SACConfig, soft_update
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class CalQLConfig(SACConfig):
    """SAC's fields (networks, learning rates, feeding) plus the CalQL loss's."""

    name: str = "calql"
    alpha: float = 5.0  # weight of the conservative term (Cal-QL uses 5 on manipulation tasks)
    num_actions: int = 10  # random and policy actions per state in the logsumexp
    calibrated: bool = True  # False: plain CQL (no Monte-Carlo floor)
    updates: int = 5_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha >= 0:
            raise ValueError(f"CalQLConfig.alpha must be >= 0, got {self.alpha!r}")
        if not isinstance(self.num_actions, int) or not 1 <= self.num_actions <= 100:
            raise ValueError(f"CalQLConfig.num_actions must be an int in [1, 100], got {self.num_actions!r}")
        if not isinstance(self.updates, int) or self.updates < 1:
            raise ValueError(f"CalQLConfig.updates must be an int >= 1, got {self.updates!r}")


def conservative_penalty(q_data: torch.Tensor, q_random: torch.Tensor, q_policy: torch.Tensor,
                         log_prob_policy: torch.Tensor, action_dim: int,
                         mc_return: torch.Tensor | None) -> torch.Tensor:
    """CQL(H) gap per critic and state, (n, B).

    q_data (n, B); q_random (n, N, B) at uniform actions on [-1, 1]^d; q_policy (n, M, B) at policy
    actions whose log-densities are log_prob_policy (M, B); mc_return (B,) floors q_policy (Cal-QL)."""
    if mc_return is not None:
        q_policy = torch.maximum(q_policy, mc_return)
    uniform_log_density = -action_dim * math.log(2.0)
    candidates = torch.cat([q_random - uniform_log_density, q_policy - log_prob_policy], dim=1)
    return torch.logsumexp(candidates, dim=1) - q_data


class CalQLAgent(Agent):
    """A SACAgent (networks, optimisers, acting, actor/temperature update) with the Cal-QL critic loss."""

    offline = True

    def __init__(self, obs_spec: ObsSpec, action_dim: int, config: CalQLConfig = CalQLConfig(), device: str = "cpu"):
        if config.grasp_critic or config.asymmetric:
            raise ValueError("Cal-QL pre-training supports the plain continuous agent (no grasp_critic/asymmetric)")
        self.config = config
        self.returns_to_go = config.calibrated  # batches carry the data's return-to-go, the Q floor
        self.sac = SACAgent(obs_spec, action_dim, config, device)
        self.device = self.sac.device
        self._generator = torch.Generator(device=self.device).manual_seed(0)

    @property
    def updates(self) -> int:
        return self.sac.updates

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        return self.sac.act(obs, deterministic)

    def policy_modules(self) -> dict[str, torch.nn.Module]:
        return self.sac.policy_modules()

    def update_batch(self, batch: Batch) -> dict[str, float]:
        sac, cfg = self.sac, self.config
        if cfg.calibrated and batch.mc_return is None:
            raise ValueError("Cal-QL needs Batch.mc_return: sample with returns_to_go=buffer.returns_to_go(gamma)")
        obs, next_obs = sac.as_tensors(batch.obs), sac.as_tensors(batch.next_obs)
        action = torch.as_tensor(batch.action, device=self.device).clamp(-1.0, 1.0)
        reward = torch.as_tensor(batch.reward, device=self.device)
        discount = torch.as_tensor(batch.discount, device=self.device)
        mc_return = torch.as_tensor(batch.mc_return, device=self.device) if cfg.calibrated else None
        n, (size, d) = cfg.num_actions, action.shape
        with sac.autocast():
            features = sac.features(obs, augment=True)
            with torch.no_grad():
                next_features = sac.features(next_obs, augment=True)
                target = sac.critic_target_value(reward, discount, next_features).float()
                # N policy actions at s and at s' (CQL scores both at s), N uniform-random actions.
                both = torch.cat([features, next_features]).detach()
                policy_action, policy_log_prob = sac.actor.sample(both.repeat(n, 1))  # [s, s'] x N
                random_action = torch.rand(n * size, d, device=self.device, generator=self._generator) * 2 - 1
            # Every candidate is scored at s (CQL), after the dataset actions: one critic pass in all.
            repeated = features.repeat(3 * n, 1)
            candidates = torch.cat([policy_action, random_action])
            q_all = sac.critic(torch.cat([torch.cat([features, repeated]), torch.cat([action, candidates])], -1))
            q_all = q_all.squeeze(-1).float()
        q_data, q_rest = q_all[:, :size], q_all[:, size:]
        critics = q_data.shape[0]
        q_policy = q_rest[:, : 2 * n * size].reshape(critics, 2 * n, size)
        q_random = q_rest[:, 2 * n * size:].reshape(critics, n, size)
        log_prob = policy_log_prob.float().view(2 * n, size)
        td_loss = F.mse_loss(q_data, target.unsqueeze(0).expand_as(q_data), reduction="none").mean(dim=1).sum()
        gap = conservative_penalty(q_data, q_random, q_policy, log_prob, d, mc_return)
        loss = td_loss + cfg.alpha * gap.mean(dim=1).sum()
        sac.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sac.critic_optimizer.step()
        soft_update(sac.critic, sac.critic_target, sac.config.tau)
        sac.updates += 1
        metrics = {"critic_loss": td_loss.item(), "cql_gap": gap.detach().mean().item(),
                   "q_mean": q_data.detach().mean().item()}
        metrics.update(sac.update_actor(features.detach().float()))
        return metrics

    def state_dict(self) -> dict:
        return {"config": asdict(self.config), "sac": self.sac.state_dict(),
                "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.sac.load_state_dict(state["sac"])
        self._generator.set_state(state["generator"])
