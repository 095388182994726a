"""CrossQ (Bhatt et al., ICLR 2024): sample-efficient off-policy RL without target networks.

SAC's actor and temperature, with critics that
- have Batch Renormalization after the input and after each hidden layer, and no target copy;
- evaluate (s, a) and (s', a' ~ pi(s')) in ONE forward pass, so the normalisation statistics cover
  both distributions (the "cross" batch); the next-state half of the output is the bootstrap target
  (gradient stopped), so no lagging target network is needed;
- are wider than SAC's and trained with Adam beta1 = 0.5 and a higher learning rate, the actor updated
  every `policy_delay` critic updates. The paper's UTD is 1.

Here it is fed exactly like SAC (n-step returns, demos mixed into each batch, `utd` batches per call),
and its actor is the same tanh-Gaussian, so actors, checkpoints and evaluation treat it like any agent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.agents.base import Agent, AgentConfig
from robot_rl.agents.sac import actor_and_temperature_step
from robot_rl.networks import ObservationEncoder, TanhGaussianActor
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class CrossQConfig(AgentConfig):
    name: str = "crossq"
    utd: int = 1
    critic_hidden_dims: tuple[int, ...] = (512, 512)  # the paper uses 2048; 512 keeps a CPU update cheap
    actor_hidden_dims: tuple[int, ...] = (256, 256)
    num_critics: int = 2
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    temperature_lr: float = 1e-3
    adam_beta1: float = 0.5
    policy_delay: int = 3  # critic updates per actor update
    init_temperature: float = 1e-2
    target_entropy: float | None = None  # None: -|A| / 2
    renorm_momentum: float = 0.01
    renorm_warmup: int = 10_000  # critic updates of plain batch norm before the renorm corrections
    feature_dim: int = 50  # per camera, pixel observations
    augment_pad: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("critic_hidden_dims", "actor_hidden_dims"):
            dims = tuple(int(h) for h in getattr(self, name))
            if not dims or min(dims) < 1:
                raise ValueError(f"CrossQConfig.{name} must be a non-empty list of positive sizes, got {dims!r}")
            object.__setattr__(self, name, dims)
        if not isinstance(self.num_critics, int) or not 1 <= self.num_critics <= 10:
            raise ValueError(f"CrossQConfig.num_critics must be an int in [1, 10], got {self.num_critics!r}")
        if not isinstance(self.policy_delay, int) or self.policy_delay < 1:
            raise ValueError(f"CrossQConfig.policy_delay must be an int >= 1, got {self.policy_delay!r}")
        for name in ("actor_lr", "critic_lr", "temperature_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CrossQConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.adam_beta1 < 1.0:
            raise ValueError(f"CrossQConfig.adam_beta1 must be in [0, 1), got {self.adam_beta1!r}")
        if not 0.0 < self.renorm_momentum < 1.0:
            raise ValueError(f"CrossQConfig.renorm_momentum must be in (0, 1), got {self.renorm_momentum!r}")


class BatchRenorm(nn.Module):
    """Batch Renormalization (Ioffe 2017) over (B, n): batch statistics while training, corrected
    towards the running ones by r (clipped to [1/r_max, r_max]) and d (clipped to [-d_max, d_max])
    after `warmup` steps; the running statistics at evaluation."""

    def __init__(self, n: int, momentum: float, warmup: int, eps: float = 1e-3, r_max: float = 3.0,
                 d_max: float = 5.0):
        super().__init__()
        self.momentum, self.warmup, self.eps, self.r_max, self.d_max = momentum, warmup, eps, r_max, d_max
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        running_std = (self.running_var + self.eps).sqrt()
        if not self.training:
            return (x - self.running_mean) / running_std * self.weight + self.bias
        mean, var = x.mean(0), x.var(0, unbiased=False)
        std = (var + self.eps).sqrt()
        normalised = (x - mean) / std
        if int(self.steps) >= self.warmup:
            r = (std.detach() / running_std).clamp(1.0 / self.r_max, self.r_max)
            d = ((mean.detach() - self.running_mean) / running_std).clamp(-self.d_max, self.d_max)
            normalised = normalised * r + d
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
            self.steps += 1
        return normalised * self.weight + self.bias


def renorm_critic(in_features: int, hidden: tuple[int, ...], config: CrossQConfig) -> nn.Sequential:
    layers: list[nn.Module] = [BatchRenorm(in_features, config.renorm_momentum, config.renorm_warmup)]
    for a, b in zip((in_features, *hidden[:-1]), hidden):
        layers += [nn.Linear(a, b), nn.ReLU(), BatchRenorm(b, config.renorm_momentum, config.renorm_warmup)]
    layers.append(nn.Linear(hidden[-1], 1))
    return nn.Sequential(*layers)


class CrossQAgent(Agent):
    def __init__(self, obs_spec: ObsSpec, action_dim: int, config: CrossQConfig = CrossQConfig(),
                 device: str = "cpu"):
        self.config, self.action_dim = config, action_dim
        self.device = torch.device(device)
        self.encoder = ObservationEncoder(obs_spec.shapes, config.feature_dim).to(self.device)
        features = self.encoder.out_features
        self.actor = TanhGaussianActor(features, config.actor_hidden_dims, action_dim).to(self.device)
        self.critics = nn.ModuleList(renorm_critic(features + action_dim, config.critic_hidden_dims, config)
                                     for _ in range(config.num_critics)).to(self.device)
        self.log_temperature = torch.tensor(np.log(config.init_temperature), dtype=torch.float32,
                                            device=self.device, requires_grad=True)
        self.target_entropy = config.target_entropy if config.target_entropy is not None else -action_dim / 2.0
        betas = (config.adam_beta1, 0.999)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, betas=betas)
        self.critic_optimizer = torch.optim.Adam(list(self.critics.parameters()) + list(self.encoder.parameters()),
                                                 lr=config.critic_lr, betas=betas)
        self.temperature_optimizer = torch.optim.Adam([self.log_temperature], lr=config.temperature_lr, betas=betas)
        self.updates = 0

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.detach().exp()

    def _q(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(num_critics, B) values."""
        x = torch.cat([features, action], -1)
        return torch.stack([critic(x).squeeze(-1) for critic in self.critics])

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        batch = {k: torch.as_tensor(np.asarray(v)[None], device=self.device) for k, v in obs.items()}
        features = self.encoder(batch)
        action = self.actor.deterministic(features) if deterministic else self.actor.sample(features)[0]
        return action[0].cpu().numpy()

    def _update_critic(self, batch: Batch) -> tuple[dict[str, float], torch.Tensor]:
        obs = {k: torch.as_tensor(v, device=self.device) for k, v in batch.obs.items()}
        next_obs = {k: torch.as_tensor(v, device=self.device) for k, v in batch.next_obs.items()}
        action = torch.as_tensor(batch.action, device=self.device).clamp(-1.0, 1.0)
        reward = torch.as_tensor(batch.reward, device=self.device)
        discount = torch.as_tensor(batch.discount, device=self.device)
        features = self.encoder(obs, self.config.augment_pad)
        with torch.no_grad():
            next_features = self.encoder(next_obs, self.config.augment_pad)
            next_action, next_log_prob = self.actor.sample(next_features)
        # One pass over [(s, a); (s', a')]: the renorm statistics see both halves.
        self.critics.train()
        q_both = self._q(torch.cat([features, next_features]), torch.cat([action, next_action]))
        size = action.shape[0]
        q, q_next = q_both[:, :size], q_both[:, size:].detach()
        target = q_next.min(dim=0).values - self.temperature * next_log_prob
        target = reward + self.config.discount * discount * target
        loss = F.mse_loss(q, target.unsqueeze(0).expand_as(q), reduction="none").mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        return {"critic_loss": loss.item(), "q_mean": q.detach().mean().item()}, features.detach()

    def _update_actor(self, features: torch.Tensor) -> dict[str, float]:
        action, log_prob = self.actor.sample(features)
        self.critics.eval()  # the running statistics: the actor's gradient must not move them
        self.critics.requires_grad_(False)
        q = self._q(features, action).mean(dim=0)
        self.critics.requires_grad_(True)
        self.critics.train()
        return actor_and_temperature_step(self, (self.temperature * log_prob - q).mean(), log_prob)

    def update(self, batches: list[Batch], actor: bool = True) -> dict[str, float]:
        """A critic update per batch; the actor and temperature after every `policy_delay`-th."""
        metrics: dict[str, float] = {}
        for batch in batches:
            metrics, features = self._update_critic(batch)
            if actor and self.updates % self.config.policy_delay == 0:
                metrics.update(self._update_actor(features))
        return metrics

    def policy_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "actor": self.actor}

    def state_dict(self) -> dict:
        return {"config": asdict(self.config), "encoder": self.encoder.state_dict(),
                "actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "log_temperature": self.log_temperature.detach().clone(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "temperature_optimizer": self.temperature_optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.temperature_optimizer.load_state_dict(state["temperature_optimizer"])
        self.updates = int(state["updates"])
