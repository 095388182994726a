"""Hybrid sim + real learning with a dynamics-gap weighting (sim-to-real recipe d, after H2O, Niu et al.
2022): while the policy learns on the robot, a simulator runs beside it and fills a second buffer;
each critic batch mixes both, and a simulator transition's Bellman error counts by how likely its
dynamics are on the robot,

    w(s, a, s') = p_real(s' | s, a) / p_sim(s' | s, a)
                = [D_sas / (1 - D_sas)] / [D_sa / (1 - D_sa)]   (two real-vs-sim classifiers),

clipped to `weight_clip` and normalised to mean 1 over the batch. Where the simulator's dynamics
match the robot's, its cheap data counts fully; where they do not, it fades out. With
`conservative_weight` > 0, H2O's conservative term is added too (`SACAgent._sim_penalty`): Q of the
policy's actions on simulator states, weighted by 1 / w, is pushed down, and Q of the robot's own
transitions up. The classifiers read the vector observations (proprio, object state) and the action,
never images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.networks import mlp
from robot_rl.replay import Batch, ObsSpec, ReplayBuffer, flatten_obs


@dataclass(frozen=True)
class HybridConfig:
    enabled: bool = False
    sim_fraction: float = 0.5  # of each critic batch, from simulator transitions
    sim_steps_per_step: int = 1  # simulator steps per robot step
    weight_clip: tuple[float, float] = (0.1, 10.0)
    discriminator_lr: float = 3e-4
    input_noise_std: float = 0.01  # on the classifiers' inputs, against overconfident odds
    # H2O's beta: weight of the conservative term that lowers Q on simulator states whose dynamics look
    # unreal (the policy's actions there) and raises it on the robot's transitions; 0 turns it off.
    conservative_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.sim_fraction < 1.0:
            raise ValueError(f"HybridConfig.sim_fraction must be in (0, 1), got {self.sim_fraction}")
        if not (isinstance(self.sim_steps_per_step, int) and self.sim_steps_per_step >= 1):
            raise ValueError(f"HybridConfig.sim_steps_per_step must be an integer >= 1, got {self.sim_steps_per_step!r}")
        if not self.conservative_weight >= 0:
            raise ValueError(f"HybridConfig.conservative_weight must be >= 0, got {self.conservative_weight!r}")
        low, high = (float(v) for v in self.weight_clip)
        if not 0.0 < low <= 1.0 <= high:
            raise ValueError(f"HybridConfig.weight_clip must be (low, high) with 0 < low <= 1 <= high, got {self.weight_clip}")
        object.__setattr__(self, "weight_clip", (low, high))


def _state_keys(keys) -> list[str]:
    """What the classifiers read: the vector observations a robot has (no images, no privileged state)."""
    return sorted(k for k in keys if not k.startswith("images/") and k != "privileged")


def state_dim(obs_spec: ObsSpec) -> int:
    return sum(int(np.prod(obs_spec.shapes[k])) for k in _state_keys(obs_spec.shapes))


def _vectors(obs: dict[str, np.ndarray]) -> np.ndarray:
    keys = _state_keys(obs)
    return np.concatenate([obs[k].reshape(len(obs[k]), -1).astype(np.float32) for k in keys], axis=1)


class DynamicsGap:
    """Real-vs-sim classifiers on (s, a, s') and (s, a); `weights(sim_batch)` is their odds ratio."""

    def __init__(self, state_dim: int, action_dim: int, cfg: HybridConfig, hidden: tuple[int, ...] = (256, 256)):
        self.cfg = cfg
        self.sas = mlp(2 * state_dim + action_dim, hidden, 1)
        self.sa = mlp(state_dim + action_dim, hidden, 1)
        self.optimizer = torch.optim.Adam(list(self.sas.parameters()) + list(self.sa.parameters()),
                                          lr=cfg.discriminator_lr)

    def _inputs(self, batch: Batch, noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
        s, s_next = torch.from_numpy(_vectors(batch.obs)), torch.from_numpy(_vectors(batch.next_obs))
        a = torch.as_tensor(batch.action, dtype=torch.float32)
        sa, sas = torch.cat([s, a], 1), torch.cat([s, a, s_next], 1)
        if noise and self.cfg.input_noise_std > 0:
            sa = sa + self.cfg.input_noise_std * torch.randn_like(sa)
            sas = sas + self.cfg.input_noise_std * torch.randn_like(sas)
        return sa, sas

    def update(self, real: Batch, sim: Batch) -> dict[str, float]:
        sa_real, sas_real = self._inputs(real, noise=True)
        sa_sim, sas_sim = self._inputs(sim, noise=True)
        labels = torch.cat([torch.ones(len(sa_real)), torch.zeros(len(sa_sim))])
        loss = (F.binary_cross_entropy_with_logits(self.sa(torch.cat([sa_real, sa_sim])).squeeze(-1), labels)
                + F.binary_cross_entropy_with_logits(self.sas(torch.cat([sas_real, sas_sim])).squeeze(-1), labels))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"dynamics_gap_loss": float(loss.item())}

    @torch.no_grad()
    def weights(self, sim: Batch) -> np.ndarray:
        sa, sas = self._inputs(sim, noise=False)
        log_ratio = self.sas(sas).squeeze(-1) - self.sa(sa).squeeze(-1)  # log odds(s,a,s') - log odds(s,a)
        low, high = self.cfg.weight_clip
        w = torch.exp(log_ratio).clamp(low, high)
        return (w / w.mean()).numpy().astype(np.float32)


class HybridSim:
    """The simulator beside the robot: it steps with the same policy into a buffer of its own, and
    `mix` adds its transitions, weighted by the dynamics gap, to each critic batch."""

    def __init__(self, sim_env, obs_spec: ObsSpec, action_dim: int, capacity: int, cfg: HybridConfig, seed: int):
        self.env, self.cfg, self.seed = sim_env, cfg, seed
        self.obs, _ = sim_env.reset(seed=seed)
        if ObsSpec.from_obs(self.obs).shapes != obs_spec.shapes:
            raise ValueError(f"hybrid: the simulator observes {ObsSpec.from_obs(self.obs).shapes}, the robot "
                             f"{obs_spec.shapes}; they must match")
        self.buffer = ReplayBuffer(capacity, obs_spec, action_dim)
        self.buffer.start_episode(self.obs)
        self.episodes = 0
        self.gap = DynamicsGap(state_dim(obs_spec), action_dim, cfg)
        self.metrics: dict[str, float] = {}

    def steps(self, agent) -> None:
        for _ in range(self.cfg.sim_steps_per_step):
            self.obs, reward, terminated, truncated, info = self.env.step(agent.act(flatten_obs(self.obs)))
            self.buffer.add(info["executed_action"], reward, self.obs, terminated, truncated,
                            gripper_toggled=info["gripper_toggled"])
            if terminated or truncated:
                self.episodes += 1
                self.obs, _ = self.env.reset(seed=self.seed + self.episodes)
                self.buffer.start_episode(self.obs)

    def mix(self, batch: Batch, online: ReplayBuffer, n_sim: int, rng: np.random.Generator, n_step: int,
            gamma: float) -> Batch:
        sim = self.buffer.sample(n_sim, rng, 1, gamma)
        self.metrics = self.gap.update(online.sample(n_sim, rng, 1, gamma), sim)
        sim = self.buffer.sample(n_sim, rng, n_step, gamma)
        sim.weight = self.gap.weights(sim)
        sim.from_sim = np.ones(n_sim, bool)
        self.metrics["sim_weight_max"] = float(sim.weight.max())
        return Batch.concat(batch, sim)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
