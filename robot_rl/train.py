"""Single-process training in simulation: demos, RLPD/SAC updates, deterministic evaluation, logs,
checkpoints that resume exactly, and a learning-curve PNG.

Run layout (`out_dir`):
    config.json              the full TrainConfig of the run
    checkpoint.pt            agent, optimisers, temperature, counters, RNG states (atomic)
    online_buffer.npz        online replay, demo_buffer.npz: the demos (staged as *.next.npz, renamed
                             into place once checkpoint.pt counts them: a crash mid-save resumes)
    eval.jsonl               one line per evaluation: env_step, success_rate, mean_return, wall_s
    learning_curve.png       success rate vs env steps
    tensorboard/             TensorBoard event files
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sim
from robot_rl.agents.bc import BCAgent, BCConfig
from robot_rl.agents.calql import CalQLAgent, CalQLConfig
from robot_rl.agents.distill import DistillConfig, Teacher, distill_update, make_student_optimizer
from robot_rl.agents.h2o import DynamicsGap, HybridConfig, state_dim
from robot_rl.agents.iql import IQLAgent, IQLConfig
from robot_rl.agents.sac import SACAgent, SACConfig, set_anchor, warm_start_sac
from robot_rl.files import atomic_write
from robot_rl.intervention import HumanConfig, InterventionSegments, SimulatedHuman
from robot_rl.replay import Batch, ObsSpec, ReplayBuffer, flatten_obs
from robot_rl.rewards.factory import RewardModelConfig
from robot_rl.rewards.frames import FrameDataset
from sim.experts import expert_for
from sim.randomization import Randomization


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
    task: str = "PickCube-v0"
    obs_mode: str = "state"
    image_size: int = 64
    cameras: tuple[str, ...] = ("front", "wrist")
    # The last N commands sent, as observation `previous_actions` (robot_rl.action_history): a robot
    # whose commands act late (latency) is then Markov again. The same in the sim and on the robot.
    action_history: int = 0
    seed: int = 0
    total_env_steps: int = 10_000
    num_demos: int = 10  # scripted-expert demos recorded when no demo file is given
    # demos for this task: a ReplayBuffer .npz, or a directory of episode files (`robot-rl teleop`,
    # `robot-rl dataset record-demos`, actors' --episodes-dir), of which the successful ones are used
    demo_path: str | None = None
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
    out_dir: str | None = None  # None: runs/<task>_<obs_mode>_<date-time>
    torch_threads: int = 1
    tensorboard: bool = True
    wandb_project: str | None = None
    progress: bool = True
    # "sac": SAC/RLPD online; "bc": behaviour cloning on the demos; "calql" / "iql": offline
    # pre-training on the demos (or demo_path dataset), whose checkpoint warm-starts a "sac" run
    # (warm_start, WSRL-style; Cal-QL is the one that fine-tunes without unlearning).
    algorithm: str = "sac"
    warm_start: str | None = None  # checkpoint.pt of an earlier calql/iql/sac run to start "sac" from
    # False: take only the actor (and encoder, temperature) from warm_start and learn the critics afresh.
    # A simulator's critics can rate the robot's failures highly, and unlearning that is slower than
    # learning values from scratch around a competent actor.
    warm_start_critics: bool = True
    agent: SACConfig = field(default_factory=SACConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    iql: IQLConfig = field(default_factory=IQLConfig)
    calql: CalQLConfig = field(default_factory=CalQLConfig)
    # H2O-style hybrid learning: a simulator (randomised per `randomization`) runs beside the robot and
    # fills a second buffer whose transitions the critic weighs by a learned dynamics-gap ratio.
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    # "distill": DAgger from a state teacher run (distill.teacher) into this config's observations.
    distill: DistillConfig = field(default_factory=DistillConfig)
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

        if isinstance(self.agent, dict):
            object.__setattr__(self, "agent", SACConfig(**self.agent))
        if isinstance(self.bc, dict):
            object.__setattr__(self, "bc", BCConfig(**self.bc))
        if isinstance(self.iql, dict):
            object.__setattr__(self, "iql", IQLConfig(**self.iql))
        if isinstance(self.calql, dict):
            object.__setattr__(self, "calql", CalQLConfig(**self.calql))
        if isinstance(self.distill, dict):
            object.__setattr__(self, "distill", DistillConfig(**self.distill))
        if isinstance(self.hybrid, dict):
            object.__setattr__(self, "hybrid", HybridConfig(**self.hybrid))
        if self.hybrid.enabled and (self.algorithm != "sac" or self.human.enabled):
            bad("hybrid", "applies to algorithm 'sac' without the simulated human")
        if isinstance(self.human, dict):
            object.__setattr__(self, "human", HumanConfig(**self.human))
        if isinstance(self.robot, dict):
            object.__setattr__(self, "robot", RobotConfig(**self.robot))
        if isinstance(self.reward, dict):
            object.__setattr__(self, "reward", RewardModelConfig(**self.reward))
        if isinstance(self.randomization, dict):
            object.__setattr__(self, "randomization", Randomization(**self.randomization))
        if self.robot.enabled and self.human.enabled:
            bad("human", "(the simulated human) needs the in-process sim; it cannot drive robot.enabled runs")
        if self.algorithm not in ("sac", "bc", "iql", "calql", "distill"):
            bad("algorithm", "must be 'sac', 'bc', 'iql', 'calql' or 'distill'")
        if self.algorithm == "distill" and (self.distill.teacher is None or self.robot.enabled or self.human.enabled):
            bad("distill", "needs distill.teacher (a state run directory) and the in-process sim (no robot, no human)")
        if self.algorithm not in ("sac", "distill") and self.num_demos == 0 and self.demo_path is None:
            bad("num_demos", f"must be > 0 (or demo_path given) for algorithm {self.algorithm!r}")
        if self.warm_start is not None and self.algorithm != "sac":
            bad("warm_start", "applies to algorithm 'sac' only")
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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """From plain values (YAML, overrides), checking keys and types; errors name the key."""
        from robot_rl.config import build

        return build(cls, values)


def make_env(cfg: TrainConfig, in_process: bool = False, evaluation: bool = False):
    """The env to act in: the task's in-process simulator (domain-randomised if configured, except for
    `evaluation`), or with `robot.enabled` (and not `in_process`) a `robot_rl.ros.RobotEnv` that
    observes and acts like it through ROS 2. Only a learning robot env reads privileged state: an
    `evaluation` one is for the actor alone. With `action_history`, either observes its last commands."""
    env = _make_base_env(cfg, in_process, evaluation)
    if cfg.action_history:
        from robot_rl.action_history import ActionHistory

        env = ActionHistory(env, cfg.action_history)
    return env


def _make_base_env(cfg: TrainConfig, in_process: bool, evaluation: bool):
    if cfg.robot.enabled and not in_process:
        from robot_rl.ros.robot_env import RobotEnv, RobotEnvConfig

        if cfg.agent.grasp_critic:
            raise ValueError("agent.grasp_critic is not wired to ROS 2 robots yet (the gripper toggles in the env)")
        overrides: dict[str, Any] = {"obs_mode": cfg.obs_mode, "domain_id": cfg.robot.domain_id}
        if cfg.obs_mode == "pixels":
            # An asymmetric critic (or a distillation teacher) reads the robot's object_state topic: a
            # tracker that is there while training (the stand-in publishes one).
            overrides.update(image_size=cfg.image_size, cameras=cfg.cameras,
                             privileged=not evaluation and (cfg.agent.asymmetric or cfg.algorithm == "distill"))
        if cfg.robot.profile is not None:
            from hardware.robots import load_profile

            return RobotEnv(RobotEnvConfig.from_profile(load_profile(cfg.robot.profile), cfg.task, **overrides))
        overrides.update(namespace=cfg.robot.namespace, lockstep=cfg.robot.lockstep)
        return RobotEnv(RobotEnvConfig.for_task(cfg.task, **overrides))
    # Privileged sim state for an asymmetric critic, or for a distillation teacher to read.
    kwargs: dict[str, Any] = {"obs_mode": cfg.obs_mode, "privileged": cfg.agent.asymmetric or cfg.algorithm == "distill"}
    if cfg.randomization.enabled and not evaluation:
        kwargs["randomization"] = cfg.randomization
    if cfg.agent.grasp_critic:  # the grasp head picks close/stay/open: the env's gripper toggles
        task = sim.TASKS.get(cfg.task.split("/", 1)[-1])
        if task is not None:
            if not task.DEFAULT_CONFIG.action.gripper:
                raise ValueError(f"agent.grasp_critic needs a task with a gripper action; {cfg.task} has none")
            kwargs["action"] = dataclasses.replace(task.DEFAULT_CONFIG.action, gripper_mode="toggle")
    if cfg.obs_mode == "pixels":
        kwargs.update(image_size=cfg.image_size, cameras=cfg.cameras)
    elif cfg.reward.model is not None:  # the labeler's cameras are rendered at image_size
        kwargs.update(image_size=cfg.image_size)
    return sim.make(cfg.task, **kwargs)


def make_eval_env(cfg: TrainConfig):
    """The nominal in-process sim, or with `robot.eval_namespace` a RobotEnv on that robot."""
    if cfg.robot.eval_namespace is None:
        return make_env(cfg, in_process=True, evaluation=True)
    robot = dataclasses.replace(cfg.robot, enabled=True, profile=None, namespace=cfg.robot.eval_namespace)
    return make_env(dataclasses.replace(cfg, robot=robot), evaluation=True)


def evaluate_checkpoint(run_dir: str | Path, overrides: dict[str, Any] | None = None, episodes: int = 20,
                        seed: int = 2_000_000_000) -> dict[str, Any]:
    """A run's policy (its checkpoint.pt and config.json), evaluated deterministically in the env that
    `overrides` select: e.g. `{"robot": {"enabled": True}}` for zero-shot success on a ROS 2 robot."""
    from robot_rl.config import merge

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() or not (run_dir / "checkpoint.pt").exists():
        raise ValueError(f"{run_dir} is not a run directory (needs config.json and checkpoint.pt)")
    values = merge(json.loads((run_dir / "config.json").read_text()), overrides or {})
    if values.get("algorithm", "sac") in ("bc", "iql"):
        raise ValueError(f"{run_dir} is a {values['algorithm']} run: `robot-rl evaluate` takes SAC, Cal-QL and "
                         f"distilled policies (BC and IQL runs report their evaluations in eval.jsonl)")
    values.update(reward={}, algorithm="sac", distill={})  # the task's own success, with the run's actor
    cfg = TrainConfig.from_dict(values)
    torch.set_num_threads(cfg.torch_threads)
    spec_env = make_env(cfg, in_process=True)  # the observation layout the agent was built for
    obs, _ = spec_env.reset(seed=seed)
    obs_spec, action_dim = ObsSpec.from_obs(obs), spec_env.action_space.shape[0]
    spec_env.close()
    agent = SACAgent(obs_spec, action_dim, cfg.agent)
    state = Trainer._read_checkpoint(run_dir / "checkpoint.pt")["agent"]
    agent.load_state_dict(state.get("sac", state))  # a Cal-QL checkpoint holds its SAC agent
    env = make_env(cfg, in_process=not cfg.robot.enabled, evaluation=True)
    try:
        result = evaluate(agent, env, episodes, seed)
    finally:
        env.close()
    return {"run": str(run_dir), "episodes": episodes, "robot": cfg.robot.enabled, **result}


def _history_hint(stored: dict, expected: dict, action_history: int) -> str:
    """Why a demo file lacks (or has) the last-commands observation, and how to make them agree."""
    from robot_rl.action_history import KEY

    if (KEY in stored) == (KEY in expected):
        return ""
    return (f"; the run observes {KEY!r} (action_history={action_history}) and the demos "
            f"{'do' if KEY in stored else 'do not'}: record them with `robot-rl teleop --action-history "
            f"{action_history}` or set action_history to what they were recorded with")


def record_demos(env, task: str, episodes: int, seed: int, capacity: int) -> ReplayBuffer:
    """Successful scripted-expert episodes (seeds from `seed` on) in a buffer of their own."""
    expert = expert_for(task, env)
    obs, _ = env.reset(seed=seed)
    buffer = ReplayBuffer(capacity, ObsSpec.from_obs(obs), env.action_space.shape[0])
    recorded, attempt = 0, 0
    while recorded < episodes:
        if attempt > 3 * episodes + 10:
            raise RuntimeError(f"the scripted expert succeeded in only {recorded} of {attempt} episodes")
        obs, _ = env.reset(seed=seed + attempt)
        expert.reset()
        observations, actions, rewards, toggles = [obs], [], [], []
        done = False
        while not done:
            action = expert.act(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            actions.append(info["executed_action"])
            rewards.append(reward)
            toggles.append(info["gripper_toggled"])
            done = terminated or truncated
        attempt += 1
        if info["success"]:
            buffer.add_episode(observations, actions, rewards, terminated, truncated, gripper_toggled=toggles)
            recorded += 1
    return buffer


def evaluate(agent: SACAgent, env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic (mean-action) evaluation on seeds disjoint from training's."""
    successes, returns, lengths = 0, [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(flatten_obs(obs), deterministic=True))
            total += reward
            done = terminated or truncated
        successes += int(info["success"])
        returns.append(total)
        lengths.append(env.steps)
    return {"success_rate": successes / episodes, "mean_return": float(np.mean(returns)),
            "mean_length": float(np.mean(lengths))}


def plot_learning_curve(evals: list[dict], path: Path, title: str, x: str = "env_step") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([e[x] for e in evals], [e["success_rate"] for e in evals], marker="o")
    ax.set_xlabel("environment steps" if x == "env_step" else "gradient updates")
    ax.set_ylabel("deterministic eval success")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


class Trainer:
    acts = True  # False (the distributed learner): never attach to a robot, use the in-process sim for shapes

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        if cfg.out_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            cfg = dataclasses.replace(cfg, out_dir=f"runs/{cfg.task.split('-')[0].lower()}_{cfg.obs_mode}_{stamp}")
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        if not resume and (self.out / "checkpoint.pt").exists():
            raise ValueError(f"{self.out} already holds a run: pass --resume to continue it, or another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.env = make_env(cfg, in_process=not self.acts)
        if cfg.reward.model is not None and self.acts:
            from robot_rl.rewards.base import instruction_for
            from robot_rl.rewards.factory import make_labeler
            from robot_rl.rewards.wrapper import LabelerReward

            labeler = make_labeler(cfg.reward)
            size = getattr(labeler, "image_size", None) or getattr(getattr(labeler, "model", None), "image_size", None)
            if size is not None and size != cfg.image_size:
                raise ValueError(f"reward.model {cfg.reward.model} takes {size}px frames: set image_size={size}")
            self.env = LabelerReward(self.env, labeler, instruction_for(cfg.reward.prompt or cfg.task),
                                     cameras=cfg.reward.cameras or None, review_every=cfg.reward.review_every)
        self.eval_env = make_eval_env(cfg)
        obs, _ = self.env.reset(seed=cfg.seed)
        self.obs_spec = ObsSpec.from_obs(obs)
        self.action_dim = self.env.action_space.shape[0]
        if cfg.algorithm == "bc":
            self.agent = BCAgent(self.obs_spec, self.action_dim, cfg.bc)
        elif cfg.algorithm == "iql":
            self.agent = IQLAgent(self.obs_spec, self.action_dim, cfg.agent, cfg.iql)
        elif cfg.algorithm == "calql":
            self.agent = CalQLAgent(self.obs_spec, self.action_dim, cfg.agent, cfg.calql)
        else:
            self.agent = SACAgent(self.obs_spec, self.action_dim, cfg.agent)
        if cfg.algorithm == "distill":
            self.teacher = Teacher(cfg.distill.teacher, cfg.task, self.action_dim)
            self.distill_optimizer = make_student_optimizer(self.agent, cfg.distill.lr)
        self.online = ReplayBuffer(cfg.buffer_capacity, self.obs_spec, self.action_dim)
        self.sim_env = self.sim_buffer = self.gap = None
        self._gap_metrics: dict[str, float] = {}
        if cfg.hybrid.enabled:
            self.sim_env = make_env(cfg, in_process=True)
            sim_obs, _ = self.sim_env.reset(seed=cfg.seed * 1_000_003 + 999_983)
            if ObsSpec.from_obs(sim_obs).shapes != self.obs_spec.shapes:
                raise ValueError(f"hybrid: the simulator observes {ObsSpec.from_obs(sim_obs).shapes}, the robot "
                                 f"{self.obs_spec.shapes}; they must match")
            self.sim_buffer = ReplayBuffer(cfg.buffer_capacity, self.obs_spec, self.action_dim)
            self.sim_buffer.start_episode(sim_obs)
            self._sim_obs, self._sim_episodes = sim_obs, 0
            self.gap = DynamicsGap(state_dim(self.obs_spec), self.action_dim, cfg.hybrid)
            self.agent.sim_penalty_weight = cfg.hybrid.conservative_weight
        self.demos: ReplayBuffer | None = None
        self.env_steps = 0
        self.episodes = 0
        self.evals: list[dict] = []
        self.episode_log: list[dict] = []  # per training episode: success, return, interventions
        self.wall_offset = 0.0
        self._human_rng = None
        self._demos_saved_at = -1  # transitions_written of the demo buffer on disk (-1: none yet)
        self._prior_reward_frames = None
        if resume and (self.out / "reward_frames.npz").exists():
            self._prior_reward_frames = FrameDataset.load(self.out / "reward_frames.npz")
        checkpoint = self.out / "checkpoint.pt"
        self._write_config()
        if resume and checkpoint.exists():
            self._load(checkpoint)
        else:
            if cfg.warm_start is not None:
                warm_start_sac(self.agent, self._read_checkpoint(Path(cfg.warm_start))["agent"],
                               critics=cfg.warm_start_critics)
            self.demos = self._initial_demos()
            if self.demos is None and cfg.human.enabled:  # interventions will fill it
                self.demos = ReplayBuffer(max(cfg.buffer_capacity // 2, 1000), self.obs_spec, self.action_dim)
            if self.demos is not None:  # no checkpoint counts it yet: written in place, once
                self.demos.save(self.out / "demo_buffer.npz")
                self._demos_saved_at = self.demos.transitions_written
        self.human = self.segments = None
        if cfg.human.enabled:
            self.human = SimulatedHuman(self.env, cfg.task, cfg.human, seed=cfg.seed)
            self.segments = InterventionSegments(self.demos)
            if self._human_rng is not None:
                self.human.rng.bit_generator.state = self._human_rng
        self._writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out / "tensorboard"))
        self._wandb = None
        if cfg.wandb_project:
            import wandb  # optional: pip install wandb

            self._wandb = wandb.init(project=cfg.wandb_project, config=asdict(cfg), dir=str(self.out))

    # -- setup -----------------------------------------------------------------------------------
    def _write_config(self) -> None:
        text = json.dumps(asdict(self.cfg), indent=2).encode()
        atomic_write(self.out / "config.json", lambda f: f.write(text))

    def _initial_demos(self) -> ReplayBuffer | None:
        cfg = self.cfg
        if cfg.demo_path is not None:
            if Path(cfg.demo_path).is_dir():
                from robot_rl.episodes import load_replay_buffer

                demos = load_replay_buffer(cfg.demo_path, task=cfg.task, success_only=True)
            else:
                demos = ReplayBuffer.load(cfg.demo_path)
            if demos.obs_spec.shapes != self.obs_spec.shapes or demos.action_dim != self.action_dim:
                raise ValueError(
                    f"demos {cfg.demo_path} do not fit task {cfg.task} ({cfg.obs_mode}): they store "
                    f"observations {demos.obs_spec.shapes} and {demos.action_dim}-d actions, the task has "
                    f"{self.obs_spec.shapes} and {self.action_dim}-d actions"
                    + _history_hint(demos.obs_spec.shapes, self.obs_spec.shapes, cfg.action_history))
            return demos
        if cfg.num_demos == 0:
            return None
        demo_env = make_env(cfg, in_process=True)
        demos = record_demos(demo_env, cfg.task, cfg.num_demos, seed=10_000_000 + cfg.seed,
                             capacity=max(cfg.num_demos * 101 + 1, 1000))
        demo_env.close()
        return demos

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, extra: dict[str, Any] | None = None) -> None:
        """Buffers are staged beside the files they replace (`*.next.npz`), then the checkpoint that
        counts them is written, then the staged buffers are renamed into place. A crash at any point
        leaves a checkpoint and buffers that agree: `_load` promotes a staged buffer the checkpoint
        counts and discards one it does not (a kill -9 mid-save must not make a run unresumable)."""
        staged = [self._stage(self.online, "online_buffer")]
        if self.demos is not None and self.demos.transitions_written != self._demos_saved_at:
            staged.append(self._stage(self.demos, "demo_buffer"))  # only interventions add to it
        lines = "".join(json.dumps(e) + "\n" for e in self.episode_log).encode()
        atomic_write(self.out / "episodes.jsonl", lambda f: f.write(lines))
        self._save_reward_frames()
        state = {
            "agent": self.agent.state_dict(),
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "online_transitions": self.online.transitions_written,
            "demo_transitions": self.demos.transitions_written if self.demos is not None else 0,
            "episode_log": self.episode_log,
            "human_rng": self.human.rng.bit_generator.state if self.human is not None else None,
            "evals": self.evals,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "wall_s": self._wall(),
            **(extra or {}),
        }
        atomic_write(self.out / "checkpoint.pt", lambda f: torch.save(state, f))
        for staged_path, final in staged:
            staged_path.replace(final)
        if self.demos is not None:
            self._demos_saved_at = self.demos.transitions_written

    def _buffer_files(self, name: str) -> tuple[Path, Path]:
        """(the file a buffer lives in, the file it is staged in during a save)."""
        return self.out / f"{name}.npz", self.out / f"{name}.next.npz"

    def _stage(self, buffer: ReplayBuffer, name: str) -> tuple[Path, Path]:
        final, staged = self._buffer_files(name)
        buffer.save(staged)
        return staged, final

    def _load_buffer(self, name: str, expected: int) -> ReplayBuffer:
        """The buffer file the checkpoint counts `expected` transitions in, after a crash mid-save."""
        final, staged = self._buffer_files(name)
        if staged.exists():
            buffer = ReplayBuffer.load(staged)
            if buffer.transitions_written == expected:  # crashed after the checkpoint: promote it
                staged.replace(final)
                return buffer
            staged.unlink()  # crashed before it: the checkpoint still counts the previous file
        buffer = ReplayBuffer.load(final)
        if buffer.transitions_written != expected:
            raise ValueError(f"{final} holds {buffer.transitions_written} transitions but the checkpoint "
                             f"{self.out / 'checkpoint.pt'} expects {expected}")
        return buffer

    def _save_reward_frames(self) -> None:
        frames = getattr(self.env, "reviewed_frames", lambda: None)()
        if frames is None:
            return
        path = self.out / "reward_frames.npz"
        if self._prior_reward_frames is not None:  # kept before a resume
            frames = FrameDataset.concat(self._prior_reward_frames, frames)
        frames.save(path)

    @staticmethod
    def _read_checkpoint(path: Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # missing, truncated, not a checkpoint: say which file
            raise ValueError(f"checkpoint {path} is unreadable: {err}") from err

    def _load(self, path: Path) -> None:
        state = self._read_checkpoint(path)
        try:
            self.agent.load_state_dict(state["agent"])
        except Exception as err:  # shapes or keys of another config
            raise ValueError(f"checkpoint {path} does not match this config: {err}") from err
        self.online = self._load_buffer("online_buffer", state["online_transitions"])
        has_demos = any(path.exists() for path in self._buffer_files("demo_buffer"))
        self.demos = self._load_buffer("demo_buffer", state["demo_transitions"]) if has_demos else None
        self._demos_saved_at = self.demos.transitions_written if self.demos is not None else -1
        self.episode_log = state.get("episode_log", [])
        self._human_rng = state.get("human_rng")
        self.env_steps, self.episodes = state["env_steps"], state["episodes"]
        self.evals = state["evals"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.wall_offset = state["wall_s"]
        if self.cfg.warm_start is not None:  # the frozen pre-trained actor is not in our checkpoint
            set_anchor(self.agent, self._read_checkpoint(Path(self.cfg.warm_start))["agent"])

    # -- loop ------------------------------------------------------------------------------------
    def _wall(self) -> float:
        return self.wall_offset + time.perf_counter() - self._start

    def _sample(self) -> list[Batch]:
        cfg = self.cfg
        has_demos = self.demos is not None and len(self.demos) > 0
        n_demo = int(round(cfg.agent.batch_size * cfg.demo_ratio)) if has_demos else 0
        batches = []
        n, gamma = cfg.agent.n_step, cfg.agent.discount
        n_sim = 0
        if self.sim_buffer is not None and len(self.sim_buffer) >= cfg.agent.batch_size:
            n_sim = int(round(cfg.agent.batch_size * cfg.hybrid.sim_fraction))
            n_demo = int(round((cfg.agent.batch_size - n_sim) * cfg.demo_ratio)) if has_demos else 0
        for _ in range(cfg.agent.utd):
            batch = self.online.sample(cfg.agent.batch_size - n_demo - n_sim, self.rng, n, gamma)
            if n_demo:
                batch = Batch.concat(batch, self.demos.sample(n_demo, self.rng, n, gamma))
            if n_sim:  # H2O: simulator transitions, weighted by how real their dynamics look
                sim = self.sim_buffer.sample(n_sim, self.rng, 1, gamma)
                self._gap_metrics = self.gap.update(self.online.sample(n_sim, self.rng, 1, gamma), sim)
                sim = self.sim_buffer.sample(n_sim, self.rng, n, gamma)
                sim.weight = self.gap.weights(sim)
                sim.from_sim = np.ones(n_sim, bool)
                self._gap_metrics["sim_weight_max"] = float(sim.weight.max())
                batch = Batch.concat(batch, sim)
            batches.append(batch)
        return batches

    def _sim_steps(self) -> None:
        """Hybrid learning: the simulator beside the robot takes its steps with the same policy."""
        for _ in range(self.cfg.hybrid.sim_steps_per_step):
            action = self.agent.act(flatten_obs(self._sim_obs))
            self._sim_obs, reward, terminated, truncated, info = self.sim_env.step(action)
            self.sim_buffer.add(info["executed_action"], reward, self._sim_obs, terminated, truncated,
                                gripper_toggled=info["gripper_toggled"])
            if terminated or truncated:
                self._sim_episodes += 1
                self._sim_obs, _ = self.sim_env.reset(seed=self.cfg.seed * 1_000_003 + 999_983 + self._sim_episodes)
                self.sim_buffer.start_episode(self._sim_obs)

    def _reset_episode(self) -> dict:
        obs, _ = self.env.reset(seed=self.cfg.seed * 1_000_003 + self.episodes)
        self.online.start_episode(obs)
        if self.human is not None:
            self.human.reset()
        return obs

    def _log(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if self._writer is not None:
                self._writer.add_scalar(key, value, self.env_steps)
        if self._wandb is not None:
            self._wandb.log(metrics, step=self.env_steps)

    def _run_offline(self) -> dict:
        """BC, IQL or Cal-QL: gradient steps on the demos/dataset only, evaluated five times."""
        cfg = self.cfg
        returns_to_go = None
        if cfg.algorithm == "bc":
            total, batch_size, n_step = cfg.bc.updates, cfg.bc.batch_size, 1
        elif cfg.algorithm == "iql":
            total, batch_size, n_step = cfg.iql.updates, cfg.agent.batch_size, cfg.agent.n_step
        else:
            total, batch_size, n_step = cfg.calql.updates, cfg.agent.batch_size, cfg.agent.n_step
            returns_to_go = self.demos.returns_to_go(cfg.agent.discount)  # Cal-QL's floor, once
        every = max(total // 5, 1)
        while self.agent.updates < total:
            batch = self.demos.sample(batch_size, self.rng, n_step, cfg.agent.discount, returns_to_go)
            metrics = self.agent.update(batch)
            if self.agent.updates % every == 0 or self.agent.updates == total:
                self._evaluate(metrics, x="updates")
        return self._finish()

    def _run_distill(self) -> dict:
        """DAgger: the teacher's share of driving falls from 1 to 0 over handover_steps; every visited
        state is stored with the teacher's action as its label; the student regresses onto the labels."""
        cfg = self.cfg
        obs = self._reset_episode()
        metrics: dict[str, float] = {}
        last_checkpoint = self.env_steps
        while self.env_steps < cfg.total_env_steps:
            flat = flatten_obs(obs)
            label = self.teacher.act(flat)
            share = 1.0 - self.env_steps / cfg.distill.handover_steps if cfg.distill.handover_steps else 0.0
            action = label if self.rng.uniform() < share else self.agent.act(flat, deterministic=True)
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.online.add(label, reward, obs, terminated, truncated)
            self.env_steps += 1
            if len(self.online) >= min(cfg.agent.batch_size, cfg.learning_starts):
                for _ in range(cfg.distill.updates_per_step):
                    metrics = distill_update(self.agent, self.distill_optimizer,
                                             self.online.sample(cfg.agent.batch_size, self.rng))
            if terminated or truncated:
                self.episodes += 1
                self.episode_log.append({"env_step": self.env_steps, "success": bool(info["success"]),
                                         "length": self.env.steps, "teacher_share": max(share, 0.0)})
                obs = self._reset_episode()
            if self.env_steps % cfg.eval_every == 0 or self.env_steps == cfg.total_env_steps:
                self._evaluate(metrics)
            if self.env_steps - last_checkpoint >= cfg.checkpoint_every:
                self.save()
                last_checkpoint = self.env_steps
        return self._finish()

    def _evaluate(self, metrics: dict[str, float], x: str = "env_step") -> dict:
        """Deterministic evaluation, recorded in eval.jsonl, the logs and the learning curve."""
        cfg = self.cfg
        result = evaluate(self.agent, self.eval_env, cfg.eval_episodes, seed=2_000_000_000 + cfg.seed)
        result.update(env_step=self.env_steps, updates=self.agent.updates, wall_s=self._wall())
        self.evals.append(result)
        lines = "".join(json.dumps(e) + "\n" for e in self.evals).encode()
        atomic_write(self.out / "eval.jsonl", lambda f: f.write(lines))
        self._log({f"eval/{k}": v for k, v in result.items() if k != "env_step"}
                  | {f"train/{k}": v for k, v in metrics.items()})
        name = f"{cfg.algorithm.upper()} " if cfg.algorithm != "sac" else ""
        plot_learning_curve(self.evals, self.out / "learning_curve.png", f"{name}{cfg.task} ({cfg.obs_mode})", x=x)
        return result

    def _finish(self) -> dict:
        self.save()
        if self._writer is not None:
            self._writer.close()
        return {"env_steps": self.env_steps, "updates": self.agent.updates, "wall_s": self._wall(),
                "evals": self.evals}

    def run(self) -> dict:
        """Train to total_env_steps (or the offline/distillation budget), then release the envs (a
        robot env's ROS 2 node and its spinning thread included)."""
        self._start = time.perf_counter()
        try:
            if self.cfg.algorithm == "distill":
                return self._run_distill()
            if self.cfg.algorithm != "sac":
                return self._run_offline()
            return self._run_online()
        finally:
            self.close()

    def close(self) -> None:
        for name in ("env", "eval_env", "sim_env"):
            env = getattr(self, name, None)
            if env is not None:
                env.close()
                setattr(self, name, None)

    def _run_online(self) -> dict:
        cfg = self.cfg
        progress = None
        if cfg.progress:
            from tqdm import tqdm

            progress = tqdm(total=cfg.total_env_steps, initial=self.env_steps, unit="step",
                            dynamic_ncols=True, file=sys.stderr)
        obs = self._reset_episode()
        episode_return, interventions, takeovers, metrics = 0.0, 0, 0, {}
        last_checkpoint = self.env_steps
        while self.env_steps < cfg.total_env_steps:
            flat = flatten_obs(obs)
            if self.env_steps < cfg.random_steps:
                action = self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
            else:
                action = self.agent.act(flat)
            intervened = False
            if self.human is not None:  # the human's action replaces the policy's while it drives
                human_action = self.human.act(action)
                if human_action is not None:
                    action, intervened = human_action, True
                if self.human.started and cfg.human.takeover_penalty and self.env.steps > 0:
                    self.online.add_to_last_reward(-cfg.human.takeover_penalty)
            previous = obs
            obs, reward, terminated, truncated, info = self.env.step(action)
            if self.human is not None and cfg.human.intervention_reward:  # RLIF
                reward = -1.0 if self.human.started else 0.0
            executed, toggled = info["executed_action"], info["gripper_toggled"]
            self.online.add(executed, reward, obs, terminated, truncated, intervened=intervened,
                            gripper_toggled=toggled)
            if self.segments is not None:
                self.segments.step(previous, executed, reward, obs, terminated, truncated, intervened, toggled)
            self.env_steps += 1
            if self.sim_env is not None:
                self._sim_steps()
            episode_return += reward
            interventions += int(intervened)
            takeovers += int(self.human is not None and self.human.started)
            if len(self.online) >= cfg.learning_starts:
                actor_from = cfg.learning_starts + cfg.critic_warmup_steps
                actor = self.env_steps >= actor_from  # critic-only for critic_warmup_steps update calls
                if cfg.anchor_weight > 0:
                    self.agent.anchor_weight = cfg.anchor_weight * max(
                        0.0, 1.0 - (self.env_steps - actor_from) / cfg.anchor_steps)
                metrics = self.agent.update(self._sample(), actor=actor) | self._gap_metrics
            if terminated or truncated:
                self.episodes += 1
                record = {"env_step": self.env_steps, "success": bool(info["success"]),
                          "true_success": bool(info.get("true_success", info["success"])),
                          "return": episode_return, "length": self.env.steps,
                          "intervention_rate": interventions / self.env.steps, "takeovers": takeovers}
                self.episode_log.append(record)
                self._log({"train/episode_return": episode_return, "train/success": float(info["success"]),
                           "train/intervention_rate": record["intervention_rate"], "train/takeovers": takeovers})
                obs = self._reset_episode()
                episode_return, interventions, takeovers = 0.0, 0, 0
            if self.env_steps % cfg.eval_every == 0 or self.env_steps == cfg.total_env_steps:
                result = self._evaluate(metrics)
                if progress is not None:
                    progress.set_postfix(success=f"{result['success_rate']:.0%}", updates=self.agent.updates)
            # Checkpoint at episode boundaries only: a resumed run starts a fresh episode.
            if (terminated or truncated) and self.env_steps - last_checkpoint >= cfg.checkpoint_every:
                self.save()
                last_checkpoint = self.env_steps
            if progress is not None:
                progress.update(1)
        if progress is not None:
            progress.close()
        return self._finish()
