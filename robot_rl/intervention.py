"""Human interventions: who drives each step, and what is learned from it.

An intervention source is asked every control step, given the policy's action, whether a human acts
instead: `SimulatedHuman` (the scripted expert playing an operator, for simulation and CI) or
`TeleopHuman` (a real device from `hardware.teleop`). Semantics (HIL-SERL):
- while the human acts, the executed action is the human's, and that is what is stored; the step is
  flagged `intervened`;
- intervened steps go to the online buffer like any other step, and also to the demo/intervention
  buffer (`InterventionSegments` cuts them into segments that bootstrap at their ends);
- optional RLIF (`intervention_reward=True`): the reward is -1 on the step a takeover begins and 0
  elsewhere, for tasks with no reward signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.replay import ReplayBuffer


@dataclass(frozen=True)
class HumanConfig:
    """The simulated human: the scripted expert takes over when the policy drifts from what the
    expert would do, after a reaction delay, for a while, a limited number of times per episode."""

    enabled: bool = False
    drift_threshold: float = 0.6  # mean |policy - expert| over the translation entries that counts as drift
    reaction_steps: int = 3  # drifting steps the policy still executes before the human takes over
    takeover_steps: int = 8  # steps the human drives once it has taken over
    budget: int = 3  # takeovers per episode at most
    noise_std: float = 0.05  # Gaussian noise on the human's actions
    intervention_reward: bool = False  # RLIF: reward -1 where a takeover begins, 0 elsewhere
    # Subtracted from the reward of the policy's last step before a takeover: without it, the steps
    # that made the human take over inherit the value of the human's rescue.
    takeover_penalty: float = 1.0

    def __post_init__(self) -> None:
        def bad(field: str, why: str):
            raise ValueError(f"HumanConfig.{field} {why}, got {getattr(self, field)!r}")

        if not self.drift_threshold > 0:
            bad("drift_threshold", "must be > 0")
        for name, low in (("reaction_steps", 1), ("takeover_steps", 1), ("budget", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                bad(name, f"must be an integer >= {low}")
        if not self.noise_std >= 0:
            bad("noise_std", "must be >= 0")
        if not self.takeover_penalty >= 0:
            bad("takeover_penalty", "must be >= 0")


class SimulatedHuman:
    """The scripted expert as an operator. `act(policy_action)` returns the human's action while it
    drives, else None."""

    def __init__(self, env, task: str, config: HumanConfig, seed: int = 0):
        from sim.experts import expert_for

        self.config = config
        self.rng = np.random.default_rng(seed)
        self.expert = expert_for(task, env, noise_std=config.noise_std, rng=self.rng)
        self.reset()

    def reset(self) -> None:
        self.expert.reset()
        self.drifting = 0  # consecutive steps the policy has drifted
        self.driving = 0  # steps left in the current takeover
        self.takeovers = 0
        self.started = False  # a takeover began on the last `act`

    def act(self, policy_action: np.ndarray) -> np.ndarray | None:
        cfg = self.config
        self.started = False
        if self.driving > 0:
            self.driving -= 1
            return self.expert.act()
        self.expert.sync()  # what would the expert do from here?
        expert_action = self.expert.act()
        gap = np.abs(np.asarray(policy_action, np.float32)[:3] - expert_action[:3]).mean()
        gripper_disagrees = (len(expert_action) > 3
                             and np.sign(policy_action[-1]) != np.sign(expert_action[-1]))
        self.drifting = self.drifting + 1 if (gap > cfg.drift_threshold or gripper_disagrees) else 0
        if self.drifting > cfg.reaction_steps and self.takeovers < cfg.budget:
            self.takeovers += 1
            self.drifting = 0
            self.driving = cfg.takeover_steps - 1
            self.started = True
            return expert_action
        return None


class TeleopHuman:
    """A real operator on a `hardware.teleop` device: drives while the device is active."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.takeovers = 0
        self.started = False
        self._was_active = False
        self.events: list = []

    def toggle_takeover(self) -> bool:
        """The operator console's TAKEOVER: latch (or release) the device as the driver."""
        return self.device.toggle_takeover()

    def act(self, policy_action: np.ndarray) -> np.ndarray | None:
        command = self.device.poll()
        self.events = list(command.events)
        active = bool(command.active) and bool(getattr(command, "connected", True))
        self.started = active and not self._was_active
        self.takeovers += int(self.started)
        self._was_active = active
        if not active:
            return None
        action = np.asarray(command.action, np.float32)
        if action.shape != np.shape(policy_action):
            raise ValueError(f"the teleop device gives {action.shape[0]}-d actions, the task takes "
                             f"{np.shape(policy_action)[0]}: configure the device for this task's action layout")
        return action


class InterventionSegments:
    """Collects intervened steps into the demo/intervention buffer as segments: a segment starts on
    the first intervened step and ends when the human lets go (stored as a truncation: the target
    bootstraps from the next observation) or with the episode (terminated or truncated as it was)."""

    def __init__(self, buffer: ReplayBuffer):
        self.buffer = buffer
        self._observations: list[dict] = []
        self._steps: list[tuple] = []

    def step(self, obs: dict, action, reward: float, next_obs: dict, terminated: bool, truncated: bool,
             intervened: bool, gripper_toggled: bool = False) -> None:
        """Call on every step, intervened or not, with the observation the action was taken from."""
        if intervened:
            if not self._observations:
                self._observations.append(obs)
            self._observations.append(next_obs)
            self._steps.append((action, reward, gripper_toggled))
            if terminated or truncated:
                self._flush(terminated)
        elif self._steps:
            self._flush(False)

    def close(self) -> None:
        """End an open segment (stored as truncated)."""
        if self._steps:
            self._flush(False)

    def _flush(self, terminated: bool) -> None:
        actions, rewards, toggles = zip(*self._steps)
        self.buffer.add_episode(self._observations, actions, rewards, terminated, not terminated,
                                intervened=[True] * len(actions), gripper_toggled=toggles)
        self._observations, self._steps = [], []
