"""SAC with the RLPD design choices, for state and pixel observations (DrQ augmentation).

- Critic ensemble (default 2, up to 10) as one batched module; LayerNorm in the critics; the target is
  the minimum over a random subset of `critic_subset` target critics (REDQ/RLPD).
- Update-to-data ratio: `utd` critic updates per environment step, then one actor and temperature update
  (high-UTD critic-only updates). The training loop enforces it: updates = utd x env steps.
- Learned temperature, initialised at `init_temperature` (1e-2), target entropy -|A|/2 by default.
- Bootstrapping is masked by `terminated` only: a time-limit truncation still bootstraps.
- Discrete gripper (`grasp_critic=True`, HIL-SERL): the last action entry is chosen by a 3-way DQN head
  over {close, stay, open} with a double-DQN target and a penalty per gripper toggle; the actor and the
  critics handle the continuous entries only. The env runs its gripper in "toggle" mode.
- Asymmetric actor-critic (`asymmetric=True`, simulation): the critics read proprio + the privileged
  state and no images, the actor reads proprio + images; the image encoder then learns from the actor
  loss, and critic updates (UTD of them per step) cost an MLP, not a conv net.
- Pixels: a conv encoder shared by actor and critics; its features are computed once per batch, trained
  by the critic loss only (the actor sees them detached), with DrQ random-shift augmentation.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.agents.base import Agent, AgentConfig
from robot_rl.networks import EnsembleMLP, ObservationEncoder, TanhGaussianActor, mlp
from robot_rl.replay import Batch, ObsSpec


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    name: str = "sac"
    hidden_dims: tuple[int, ...] = (256, 256)
    num_critics: int = 2
    critic_subset: int = 2
    critic_layer_norm: bool = True
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    init_temperature: float = 1e-2
    target_entropy: float | None = None  # None: -|A| / 2
    backup_entropy: bool = False  # RLPD: no entropy term in the critic target
    feature_dim: int = 50  # per camera, pixel observations
    augment_pad: int = 4  # DrQ random shift in pixels; 0 disables it
    # Photometric augmentation (networks.random_color): brightness and contrast x[1 - s, 1 + s], each RGB
    # channel +-s/2, per image per batch. 0 disables it; distillation students use it (docs/sim2real.md).
    augment_color: float = 0.0
    # "bf16": matmuls in bfloat16 under autocast (weights, optimiser and losses stay float32): 4x faster
    # matmuls on CPUs with AVX512-BF16/AMX, 1.5-2x faster updates. "fp32": exact. "auto": bf16 where the
    # hardware has native bf16 (CPU flags, or a CUDA device), else fp32.
    precision: str = "auto"
    backbone: str | None = None  # pretrained frozen image backbone: a local directory or hub id
    compile: bool = False  # torch.compile the networks (~10 s at start; +25-45% updates/s on CPU here)
    asymmetric: bool = False  # critics on privileged state, actor on images (simulation training)
    # The image encoder is not trained: fine-tuning a policy whose features already transfer (a distilled
    # pixel student), so that only the actor head and critics adapt and the anchor covers all the actor.
    freeze_encoder: bool = False
    grasp_critic: bool = False  # discrete gripper head (HIL-SERL); the last action entry is the gripper
    grasp_penalty: float = 0.02  # subtracted from the grasp head's reward on each gripper toggle
    grasp_epsilon: float = 0.05  # exploration: a random gripper choice with this probability

    def __post_init__(self) -> None:
        super().__post_init__()

        def bad(field: str, why: str):
            raise ValueError(f"{type(self).__name__}.{field} {why}, got {getattr(self, field)!r}")

        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            bad("hidden_dims", "must be a non-empty list of positive sizes")
        if not 1 <= self.num_critics <= 64:
            bad("num_critics", "must be in [1, 64]")
        if not 1 <= self.critic_subset <= self.num_critics:
            bad("critic_subset", f"must be in [1, num_critics={self.num_critics}]")
        if not 0.0 < self.tau <= 1.0:
            bad("tau", "must be in (0, 1]")
        for name in ("actor_lr", "critic_lr", "temperature_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if self.augment_pad < 0:
            bad("augment_pad", "must be >= 0")
        if not 0.0 <= self.augment_color < 1.0:
            bad("augment_color", "must be in [0, 1) (0 disables it)")
        if self.grasp_penalty < 0:
            bad("grasp_penalty", "must be >= 0")
        if not 0.0 <= self.grasp_epsilon <= 1.0:
            bad("grasp_epsilon", "must be in [0, 1]")
        if self.precision not in ("auto", "fp32", "bf16"):
            bad("precision", "must be 'auto', 'fp32' or 'bf16'")

    def observes_privileged(self) -> bool:
        return self.asymmetric

    def toggles_gripper(self) -> bool:
        return self.grasp_critic


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively (fast) here."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # not Linux: stay exact
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


@torch.no_grad()
def soft_update(net: torch.nn.Module, target: torch.nn.Module, tau: float) -> None:
    for p, p_target in zip(net.parameters(), target.parameters()):
        p_target.lerp_(p, tau)


def actor_and_temperature_step(agent, actor_loss: torch.Tensor, log_prob: torch.Tensor) -> dict[str, float]:
    """SAC's actor step on `actor_loss`, then the temperature step towards the target entropy (shared by
    every agent with SAC's actor: its `actor_optimizer`, `log_temperature`, `temperature_optimizer`)."""
    agent.actor_optimizer.zero_grad(set_to_none=True)
    actor_loss.backward()
    agent.actor_optimizer.step()
    entropy = -log_prob.detach().mean()
    temperature_loss = agent.log_temperature.exp() * (entropy - agent.target_entropy)
    agent.temperature_optimizer.zero_grad(set_to_none=True)
    temperature_loss.backward()
    agent.temperature_optimizer.step()
    return {"actor_loss": actor_loss.item(), "entropy": entropy.item(),
            "temperature": agent.log_temperature.detach().exp().item()}


class SACAgent(Agent):
    def __init__(self, obs_spec: ObsSpec, action_dim: int, config: SACConfig = SACConfig(),
                 device: str = "cpu"):
        self.config, self.obs_spec, self.action_dim = config, obs_spec, action_dim
        self.device = torch.device(device)
        self.bf16 = config.precision == "bf16" or (config.precision == "auto" and native_bf16(self.device))
        self.encoder = ObservationEncoder(obs_spec.shapes, config.feature_dim, backbone=config.backbone).to(self.device)
        features = self.encoder.out_features
        # What the critics read: the actor's features, or (asymmetric) proprio + privileged state.
        self.critic_encoder = (ObservationEncoder(obs_spec.shapes, images=False, privileged=True)
                               if config.asymmetric else None)
        critic_features = self.critic_encoder.out_features if config.asymmetric else features
        if config.grasp_critic and config.asymmetric:
            raise ValueError("SACConfig.grasp_critic with asymmetric=True is not supported: the grasp head "
                             "acts, so it cannot read the privileged state")
        if config.grasp_critic and action_dim < 2:
            raise ValueError("SACConfig.grasp_critic needs an action with a gripper entry after the motion")
        # Entries the actor and critics handle: all but the gripper when the grasp head chooses it.
        self.continuous_dim = action_dim - 1 if config.grasp_critic else action_dim
        self.actor = TanhGaussianActor(features, config.hidden_dims, self.continuous_dim).to(self.device)
        self.critic = EnsembleMLP(config.num_critics, critic_features + self.continuous_dim, config.hidden_dims, 1,
                                  layer_norm=config.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_temperature = torch.tensor(np.log(config.init_temperature), dtype=torch.float32,
                                            device=self.device, requires_grad=True)
        self.target_entropy = (config.target_entropy if config.target_entropy is not None
                               else -self.continuous_dim / 2.0)
        self.grasp: torch.nn.Module | None = None
        if config.grasp_critic:
            self.grasp = mlp(critic_features, config.hidden_dims, 3, layer_norm=True).to(self.device)
            self.grasp_target = copy.deepcopy(self.grasp).requires_grad_(False)
            self.grasp_optimizer = torch.optim.Adam(self.grasp.parameters(), lr=config.critic_lr)
            self._rng = np.random.default_rng(0)
        critic_params = list(self.critic.parameters())
        actor_params = list(self.actor.parameters())
        if config.freeze_encoder:
            self.encoder.requires_grad_(False)
        encoder_params = [p for p in self.encoder.parameters() if p.requires_grad]  # not a frozen backbone
        if config.asymmetric:
            actor_params += encoder_params  # the encoder learns from the actor loss
        else:
            critic_params += encoder_params  # DrQ: from the critic loss
        if config.compile:  # in place: state_dict keys (checkpoints) stay the same
            for module in (self.actor, self.critic, self.critic_target):
                module.compile()
        # fused Adam: one kernel over all parameters instead of a loop of small ops (~10% of an update)
        fused = self.device.type in ("cpu", "cuda")
        self.actor_optimizer = torch.optim.Adam(actor_params, lr=config.actor_lr, fused=fused)
        self.critic_optimizer = torch.optim.Adam(critic_params, lr=config.critic_lr, fused=fused)
        self.temperature_optimizer = torch.optim.Adam([self.log_temperature], lr=config.temperature_lr)
        self.updates = 0
        self.anchor: TanhGaussianActor | None = None  # frozen pre-trained actor (warm_start_sac)
        self.anchor_weight = 0.0
        self.sim_penalty_weight = 0.0  # H2O's beta (HybridConfig.conservative_weight), set by the trainer

    def autocast(self):
        """The agent's compute precision as a context: bf16 autocast where `precision` chose it, else a no-op.
        Part of the agent's interface: IQL, Cal-QL and distillation run their forwards under it too."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.detach().exp()

    # -- features --------------------------------------------------------------------------------
    def as_tensors(self, obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """A batch's observation arrays as tensors on the agent's device."""
        return {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}

    def features(self, obs: dict[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        if not augment:
            return self.encoder(obs)
        return self.encoder(obs, self.config.augment_pad, self.config.augment_color)

    # -- acting ----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        """One action for one flat observation (no batch dimension)."""
        batch = {k: torch.as_tensor(np.asarray(v)[None], device=self.device) for k, v in obs.items()}
        features = self.features(batch)
        action = self.actor.deterministic(features) if deterministic else self.actor.sample(features)[0]
        action = action[0].cpu().numpy()
        if self.grasp is not None:
            choice = int(self.grasp(features)[0].argmax())
            if not deterministic and self._rng.uniform() < self.config.grasp_epsilon:
                choice = int(self._rng.integers(3))
            action = np.append(action, np.float32(choice - 1))  # {close, stay, open} -> {-1, 0, +1}
        return action

    # -- learning --------------------------------------------------------------------------------
    def critic_target_value(self, reward, discount, next_features, next_critic_features=None) -> torch.Tensor:
        """r + gamma * mask * (min over a random subset of target critics [- alpha log pi]).
        `next_features` feed the actor; the critics read `next_critic_features` when given (asymmetric)."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_features)
            if next_critic_features is not None:
                next_features = next_critic_features
            members = None  # evaluate only the sampled subset: 5x less target work for 10 critics
            if self.config.critic_subset < self.config.num_critics:
                members = torch.randperm(self.config.num_critics, device=self.device)[: self.config.critic_subset]
            q_next = self.critic_target(torch.cat([next_features, next_action], -1), members).squeeze(-1)
            target = q_next.min(dim=0).values
            if self.config.backup_entropy:
                target = target - self.temperature * next_log_prob
            return reward + self.config.discount * discount * target

    def update_critic(self, batch: Batch) -> dict[str, float]:
        obs, next_obs = self.as_tensors(batch.obs), self.as_tensors(batch.next_obs)
        action = torch.as_tensor(batch.action, device=self.device)
        reward = torch.as_tensor(batch.reward, device=self.device)
        discount = torch.as_tensor(batch.discount, device=self.device)
        with self.autocast():
            features = self._critic_features(obs)
            with torch.no_grad():
                next_features = self.features(next_obs, augment=True)
                next_critic = self.critic_encoder(next_obs) if self.critic_encoder is not None else None
            target = self.critic_target_value(reward, discount, next_features, next_critic).float()
            q = self.critic(torch.cat([features, action[:, : self.continuous_dim]], -1)).squeeze(-1).float()
        error = F.mse_loss(q, target.unsqueeze(0).expand_as(q), reduction="none")
        if batch.weight is not None:  # H2O: simulator samples count by how real their dynamics look
            error = error * torch.as_tensor(batch.weight, device=self.device, dtype=error.dtype)[None]
        loss = error.mean(dim=1).sum()
        metrics: dict[str, float] = {}
        if self.sim_penalty_weight > 0 and batch.from_sim is not None and batch.from_sim.any() \
                and not batch.from_sim.all():
            penalty = self._sim_penalty(obs, features, q, batch)
            loss = loss + self.sim_penalty_weight * penalty.sum()
            metrics["sim_penalty"] = float(penalty.mean().item())
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        soft_update(self.critic, self.critic_target, self.config.tau)
        self.updates += 1
        self._last_features = features.detach().float()
        self._last_obs = obs
        metrics.update(critic_loss=loss.item(), q_mean=q.detach().mean().item())
        if self.grasp is not None:
            toggled = torch.as_tensor(batch.gripper_toggled, device=self.device, dtype=torch.float32)
            metrics["grasp_loss"] = self.update_grasp(self._last_features, action[:, -1], reward, discount,
                                                      toggled, next_features.float())
        return metrics

    def _sim_penalty(self, obs, critic_features, q, batch: Batch) -> torch.Tensor:
        """H2O's conservative term, per critic: Q of the policy's actions on simulator states, weighted
        towards the states whose dynamics look least real (omega ~ 1 / dynamics ratio, summing to 1), minus
        the mean Q of the robot's own transitions. It pulls values learned where the sim is wrong down
        and the robot's up."""
        sim = torch.as_tensor(batch.from_sim, device=self.device)
        ratio = torch.as_tensor(batch.weight, device=self.device, dtype=torch.float32)[sim] \
            if batch.weight is not None else torch.ones(int(sim.sum()), device=self.device)
        omega = (1.0 / ratio) / (1.0 / ratio).sum()
        with torch.no_grad():
            actor_features = critic_features if self.critic_encoder is None else self.features(obs)
            policy_action, _ = self.actor.sample(actor_features[sim])
        with self.autocast():
            q_policy = self.critic(torch.cat([critic_features[sim], policy_action], -1)).squeeze(-1).float()
        return (q_policy * omega).sum(dim=1) - q[:, ~sim].mean(dim=1)

    @staticmethod
    def grasp_labels(gripper_values: torch.Tensor) -> torch.Tensor:
        """Executed gripper entries -> {0: close, 1: stay, 2: open}, with the env's toggle thresholds."""
        return (gripper_values >= 0.5).long() * 2 + ((gripper_values > -0.5) & (gripper_values < 0.5)).long()

    def grasp_target_value(self, reward, discount, toggled, next_features) -> torch.Tensor:
        """Double DQN: the online head picks the next choice, the target head values it."""
        with torch.no_grad():
            best = self.grasp(next_features).argmax(dim=-1, keepdim=True)
            next_q = self.grasp_target(next_features).gather(-1, best).squeeze(-1)
            return reward - self.config.grasp_penalty * toggled + self.config.discount * discount * next_q

    def update_grasp(self, features, gripper_values, reward, discount, toggled, next_features) -> float:
        target = self.grasp_target_value(reward, discount, toggled, next_features)
        q = self.grasp(features).gather(-1, self.grasp_labels(gripper_values).unsqueeze(-1)).squeeze(-1)
        loss = F.mse_loss(q, target)
        self.grasp_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.grasp_optimizer.step()
        soft_update(self.grasp, self.grasp_target, self.config.tau)
        return loss.item()

    def _critic_features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.critic_encoder is not None:
            return self.critic_encoder(obs)
        return self.features(obs, augment=True)

    def update_actor(self, features: torch.Tensor, critic_features: torch.Tensor | None = None) -> dict[str, float]:
        """Actor and temperature step. Symmetric: on detached features (the encoder learns from the
        critic). Asymmetric: `features` carry gradients into the image encoder, the critics read
        `critic_features`."""
        critic_features = features if critic_features is None else critic_features
        with self.autocast():
            action, log_prob = self.actor.sample(features)
            self.critic.requires_grad_(False)  # gradients to the action only, not to critic weights
            q = self.critic(torch.cat([critic_features, action], -1)).squeeze(-1).float().mean(dim=0)
            self.critic.requires_grad_(True)
        log_prob = log_prob.float()
        actor_loss = (self.temperature * log_prob - q).mean()
        if self.anchor is not None and self.anchor_weight > 0:
            # Fine-tuning from a pre-trained policy: stay near its mean action while the critics,
            # trained on little online data, are still unreliable away from it.
            with torch.no_grad(), self.autocast():
                anchor_action = self.anchor.deterministic(features.detach())
            with self.autocast():
                mean_action = self.actor.deterministic(features)
            drift = (mean_action.float() - anchor_action.float()).pow(2).sum(-1).mean()
            actor_loss = actor_loss + self.anchor_weight * drift
        return actor_and_temperature_step(self, actor_loss, log_prob)

    def update(self, batches: list[Batch], actor: bool = True) -> dict[str, float]:
        """`len(batches)` critic updates (the UTD), then one actor/temperature update (unless
        `actor=False`: critic-only, e.g. while pre-trained critics catch up with the policy)."""
        metrics: dict[str, float] = {}
        for batch in batches:
            metrics = self.update_critic(batch)
        if not actor:
            return metrics
        if self.critic_encoder is not None:
            with self.autocast(), torch.set_grad_enabled(not self.config.freeze_encoder):
                actor_features = self.features(self._last_obs, augment=True)
            metrics.update(self.update_actor(actor_features, self._last_features))
        else:
            metrics.update(self.update_actor(self._last_features))
        return metrics

    # -- the agent interface ---------------------------------------------------------------------
    def policy_modules(self) -> dict[str, torch.nn.Module]:
        modules = {"encoder": self.encoder, "actor": self.actor}
        if self.grasp is not None:
            modules["grasp"] = self.grasp
        return modules

    def warm_start(self, pretrained: dict, critics: bool = True) -> None:
        warm_start_sac(self, pretrained, critics)

    def set_anchor_weight(self, weight: float) -> None:
        self.anchor_weight = weight

    # -- persistence -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {
            "config": asdict(self.config),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_temperature": self.log_temperature.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "temperature_optimizer": self.temperature_optimizer.state_dict(),
            "updates": self.updates,
        }
        state["encoder"] = self.encoder.state_dict()
        if self.grasp is not None:
            state["grasp"] = self.grasp.state_dict()
            state["grasp_target"] = self.grasp_target.state_dict()
            state["grasp_optimizer"] = self.grasp_optimizer.state_dict()
            state["grasp_rng"] = self._rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.encoder.load_state_dict(state["encoder"])
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.temperature_optimizer.load_state_dict(state["temperature_optimizer"])
        if self.grasp is not None:
            self.grasp.load_state_dict(state["grasp"])
            self.grasp_target.load_state_dict(state["grasp_target"])
            self.grasp_optimizer.load_state_dict(state["grasp_optimizer"])
            self._rng.bit_generator.state = state["grasp_rng"]
        self.updates = int(state["updates"])


def warm_start_sac(agent: SACAgent, pretrained: dict, critics: bool = True) -> None:
    """WSRL: copy a pre-trained agent's encoder, actor, critics and temperature (not optimisers or
    counters) into a fresh SAC agent; `critics=False` leaves the critics freshly initialised. `pretrained`
    is a Cal-QL, IQL or SAC agent state dict (a checkpoint's "agent")."""
    state = pretrained.get("sac", pretrained)
    try:
        agent.encoder.load_state_dict(state["encoder"])
        agent.actor.load_state_dict(state["actor"])
        if critics:
            agent.critic.load_state_dict(state["critic"])
            agent.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            agent.log_temperature.copy_(state["log_temperature"])
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"the pre-trained checkpoint does not fit this agent (task, observations, network "
                         f"sizes must match): {err}") from err
    set_anchor(agent, pretrained)


def set_anchor(agent: SACAgent, pretrained: dict) -> None:
    """Keep a frozen copy of the pre-trained actor, for the actor's drift penalty (`anchor_weight`);
    also called when a warm-started run resumes."""
    anchor = copy.deepcopy(agent.actor)
    anchor.load_state_dict(pretrained.get("sac", pretrained)["actor"])
    agent.anchor = anchor.requires_grad_(False)
