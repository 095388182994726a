"""The configuration of a training run (`robot-rl train`, `learner`, `actor`): typed, validated, built
from YAML and `--set key=value` by one builder (robot_rl.config.build) that names a wrong key.

Sections: `env` (which environment), `agent` (a registered agent: `agent.name` picks its config),
`robot`, `human`, `reward`, `hybrid`, `randomization`; the run's own fields (budget, demos, replay,
evaluation, checkpoints, logging) at the top level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robot_rl.agents import AgentConfig, agent_spec
from robot_rl.agents.h2o import HybridConfig
from robot_rl.agents.sac import SACConfig
from robot_rl.config import coerce_sections
from robot_rl.intervention import HumanConfig
from robot_rl.rewards.factory import RewardModelConfig
from sim.randomization import Randomization


@dataclass(frozen=True)
class EnvConfig:
    """The environment: one of the project's tasks (`PickCube-v0`, `PegInsertion-v0`) or any gymnasium
    env id (`module:Env-v0` imports `module` first, which registers it)."""

    id: str = "PickCube-v0"
    # Constructor arguments of a gymnasium env (`--set env.kwargs.max_episode_steps=200`); the
    # project's tasks take their options from the run's fields (obs_mode, image_size, ...).
    kwargs: dict = field(default_factory=dict)
    # Which info key says the episode succeeded; None: `is_success`, then `success` (else never).
    success_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"EnvConfig.id must be a task or gymnasium env id, got {self.id!r}")
        if not isinstance(self.kwargs, dict):
            raise ValueError(f"EnvConfig.kwargs must be a mapping of constructor arguments, got {self.kwargs!r}")

    @property
    def name(self) -> str:
        """A short name for run directories: `PickCube-v0` -> `pickcube`."""
        return self.id.split(":")[-1].split("/")[-1].split("-")[0].lower()


@dataclass(frozen=True)
class RobotConfig:
    """Act through ROS 2 on a robot (a `robot-rl sim-robot` node, or a real arm's bridge) instead of the
    in-process simulator. Demos and evaluation still use the in-process sim of the task (ground truth,
    no robot time)."""

    enabled: bool = False
    # A robot profile (hardware/robots/profiles/<name>.yaml, or a path): its namespace, rate, action
    # scales and safety limits; then `namespace` and `lockstep` below are ignored.
    profile: str | None = None
    namespace: str = "robot"
    lockstep: bool = True  # a sim node started with --lockstep; False: a real-time robot
    domain_id: int | None = None  # None: ROS_DOMAIN_ID (else 0)
    # Evaluate through a second robot on this namespace (e.g. a second `sim-robot --standin` node)
    # instead of the in-process sim: success on the robot itself, measured without disturbing training.
    eval_namespace: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    obs_mode: str = "state"
    image_size: int = 64
    cameras: tuple[str, ...] = ("front", "wrist")
    # The last N commands sent, as observation `previous_actions` (robot_rl.action_history): a robot
    # whose commands act late (latency) is then Markov again. The same in the sim and on the robot.
    action_history: int = 0
    seed: int = 0
    total_env_steps: int = 10_000
    num_demos: int = 10  # scripted-expert demos recorded when no demo file is given
    # demos for this env: a ReplayBuffer .npz, or a directory of episode files (`robot-rl teleop`,
    # `robot-rl dataset record-demos`, actors' --episodes-dir), of which the successful ones are used
    demo_path: str | None = None
    # Who records the num_demos demos: None, the project task's scripted expert; or `module:function`,
    # a function (observation, env) -> action in the env's own action space, for any env.
    demo_policy: str | None = None
    random_steps: int = 0  # uniform-random actions before the policy acts (RLPD with demos: 0)
    learning_starts: int = 256  # online transitions before updates begin (WSRL's warm-up)
    # Online steps after learning_starts with critic-only updates: pre-trained critics first learn the
    # value of the policy that is acting, before the actor may follow their gradient.
    critic_warmup_steps: int = 0
    # Warm-started runs: weight of a penalty on the actor's mean action moving away from the
    # pre-trained actor's, decayed linearly to 0 over anchor_steps online steps once the actor updates.
    anchor_weight: float = 0.0
    anchor_steps: int = 5_000
    buffer_capacity: int = 200_000
    # Fraction of each batch drawn from the demo/intervention buffer while it holds anything (RLPD's
    # symmetric sampling); plain SAC without demos or interventions samples online data only.
    demo_ratio: float = 0.5
    eval_every: int = 1_000
    eval_episodes: int = 20
    checkpoint_every: int = 2_000
    out_dir: str | None = None  # None: runs/<env>_<obs_mode>_<date-time>
    torch_threads: int = 1
    tensorboard: bool = True
    wandb_project: str | None = None
    progress: bool = True
    warm_start: str | None = None  # checkpoint.pt of an earlier calql/iql/sac run to start from (WSRL)
    # False: take only the actor (and encoder, temperature) from warm_start and learn the critics afresh.
    # A simulator's critics can rate the robot's failures highly, and unlearning that is slower than
    # learning values from scratch around a competent actor.
    warm_start_critics: bool = True
    # The learning agent: `agent.name` picks a registered one (robot_rl.agents: sac, crossq, bc, iql,
    # calql, distill) and the other keys are its config's fields (`--set agent.name=crossq agent.utd=1`).
    agent: AgentConfig = field(default_factory=SACConfig)
    # H2O-style hybrid learning: a simulator (randomised per `randomization`) runs beside the robot and
    # fills a second buffer whose transitions the critic weighs by a learned dynamics-gap ratio.
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    # A simulated human (the scripted expert) who takes over when the policy drifts; its steps go to
    # the online and the demo/intervention buffers (HIL-SERL).
    human: HumanConfig = field(default_factory=HumanConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    # A reward labeler (success classifier, preference model, CLIP or VLM; robot_rl.rewards.factory)
    # whose reward and success replace the env's while training, as on a real robot; evaluations still
    # report the simulator's true success. `--set reward.model=success.pt`.
    reward: RewardModelConfig = field(default_factory=RewardModelConfig)
    # Domain randomisation of the in-process sim the learner acts in (sim.randomization.Randomization:
    # `--set randomization.enabled=true`); evaluation in the sim stays nominal.
    randomization: Randomization = field(default_factory=Randomization)

    def __post_init__(self) -> None:
        def bad(name: str, why: str):
            raise ValueError(f"TrainConfig.{name} {why}, got {getattr(self, name)!r}")

        coerce_sections(self)
        offline = agent_spec(self.agent.name).agent_class().offline
        if self.hybrid.enabled and (self.agent.name != "sac" or self.human.enabled):
            bad("hybrid", "applies to agent.name 'sac' without the simulated human")
        if self.robot.enabled and self.human.enabled:
            bad("human", "(the simulated human) needs the in-process sim; it cannot drive robot.enabled runs")
        if offline and self.num_demos == 0 and self.demo_path is None:
            bad("num_demos", f"must be > 0 (or demo_path given) for the offline agent {self.agent.name!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if self.obs_mode not in ("state", "pixels"):
            bad("obs_mode", "must be 'state' or 'pixels'")
        for name, low in (("total_env_steps", 1), ("num_demos", 0), ("random_steps", 0),
                          ("learning_starts", 1), ("critic_warmup_steps", 0), ("action_history", 0), ("anchor_steps", 1),
                          ("buffer_capacity", 1000), ("eval_every", 1),
                          ("eval_episodes", 1), ("checkpoint_every", 1), ("torch_threads", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                bad(name, f"must be an integer >= {low}")
        if self.anchor_weight < 0:
            bad("anchor_weight", "must be >= 0")
        if not self.warm_start_critics and self.warm_start is None:
            bad("warm_start_critics", "needs warm_start (False keeps only its actor)")
        if self.anchor_weight > 0 and self.warm_start is None:
            bad("anchor_weight", "needs warm_start (the pre-trained actor to stay near)")
        if not 0.0 <= self.demo_ratio < 1.0:
            bad("demo_ratio", "must be in [0, 1)")
        if self.demo_policy is not None and ":" not in self.demo_policy:
            bad("demo_policy", "must look like module:function")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """From plain values (YAML, overrides), checking keys and types; errors name the key."""
        from robot_rl.config import build

        for old, new in RENAMED.items():
            if old in values:
                raise ValueError(f"config key {old!r} is now {new} (robot_rl/run_config.py); rename it in "
                                 f"your config or --set")
        return build(cls, values)


# Keys of earlier versions, and what replaced them.
RENAMED = {"task": "env.id", "algorithm": "agent.name", "bc": "the agent section (agent.name=bc)",
           "iql": "the agent section (agent.name=iql)", "calql": "the agent section (agent.name=calql)",
           "distill": "the agent section (agent.name=distill, agent.teacher=...)"}
