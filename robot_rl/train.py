"""Single-process training: demos, updates of the configured agent at the configured update-to-data
ratio, deterministic evaluation, logs, checkpoints that resume exactly, a learning-curve PNG. The run
directory's files are described in robot_rl/run_dir.py; the agent is whatever `agent.name` registers
(robot_rl/agents): this loop only calls `act`, `update` and `state_dict`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.agents import make_agent
from robot_rl.demos import initial_demos
from robot_rl.envs import make_env, make_eval_env, with_labeler
from robot_rl.evaluate_run import evaluate_checkpoint
from robot_rl.intervention import InterventionSegments, SimulatedHuman
from robot_rl.replay import Batch, ObsSpec, ReplayBuffer, flatten_obs
from robot_rl.rewards.frames import FrameDataset
from robot_rl.rollout import episode_steps, evaluate, record_demos
from robot_rl.run_config import EnvConfig, RobotConfig, TrainConfig
from robot_rl.run_dir import RunDir, plot_learning_curve

__all__ = ["EnvConfig", "RobotConfig", "TrainConfig", "Trainer", "evaluate", "evaluate_checkpoint", "make_env",
           "make_eval_env", "record_demos"]


class Trainer:
    acts = True  # False (the distributed learner): its actors act; it builds its env only for shapes

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        if cfg.out_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            cfg = dataclasses.replace(cfg, out_dir=f"runs/{cfg.env.name}_{cfg.obs_mode}_{stamp}")
        self.cfg, self.out, self.run_dir = cfg, Path(cfg.out_dir), RunDir(cfg.out_dir)
        if not resume and (self.out / "checkpoint.pt").exists():
            raise ValueError(f"{self.out} already holds a run: pass --resume to continue it, or another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.env = make_env(cfg, in_process=not self.acts)
        if cfg.reward.model is not None and self.acts:
            self.env = with_labeler(self.env, cfg)
        self.eval_env = make_eval_env(cfg)
        obs, _ = self.env.reset(seed=cfg.seed)
        self.obs_spec, self.action_dim = ObsSpec.from_obs(obs), self.env.action_space.shape[0]
        self.agent = make_agent(self.obs_spec, self.action_dim, cfg.agent)
        self.online = ReplayBuffer(cfg.buffer_capacity, self.obs_spec, self.action_dim)
        self.hybrid = None
        if cfg.hybrid.enabled:
            from robot_rl.agents.h2o import HybridSim

            self.hybrid = HybridSim(make_env(cfg, in_process=True), self.obs_spec, self.action_dim,
                                    cfg.buffer_capacity, cfg.hybrid, seed=cfg.seed * 1_000_003 + 999_983)
            self.agent.sim_penalty_weight = cfg.hybrid.conservative_weight
        self.demos: ReplayBuffer | None = None
        self.env_steps = self.episodes = 0
        self.evals: list[dict] = []
        self.episode_log: list[dict] = []  # per training episode: success, return, interventions
        self.wall_offset = 0.0
        self._human_rng = None
        self._demos_saved_at = -1  # transitions_written of the demo buffer on disk (-1: none yet)
        self._prior_reward_frames = None
        if resume and (self.out / "reward_frames.npz").exists():
            self._prior_reward_frames = FrameDataset.load(self.out / "reward_frames.npz")
        self.run_dir.write_json("config.json", asdict(self.cfg))
        if resume and (self.out / "checkpoint.pt").exists():
            self._load(self.out / "checkpoint.pt")
        else:
            if cfg.warm_start is not None:
                self.agent.warm_start(RunDir.read_checkpoint(cfg.warm_start)["agent"], critics=cfg.warm_start_critics)
            self.demos = initial_demos(cfg, self.obs_spec, self.action_dim)
            if self.demos is None and cfg.human.enabled:  # interventions will fill it
                self.demos = ReplayBuffer(max(cfg.buffer_capacity // 2, 1000), self.obs_spec, self.action_dim)
            if self.demos is not None:  # no checkpoint counts it yet: written in place, once
                self.demos.save(self.out / "demo_buffer.npz")
                self._demos_saved_at = self.demos.transitions_written
        self.human = self.segments = None
        if cfg.human.enabled:
            self.human = SimulatedHuman(self.env, cfg.env.id, cfg.human, seed=cfg.seed)
            self.segments = InterventionSegments(self.demos)
            if self._human_rng is not None:
                self.human.rng.bit_generator.state = self._human_rng
        self._writer = self._wandb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out / "tensorboard"))
        if cfg.wandb_project:
            import wandb  # optional: pip install wandb

            self._wandb = wandb.init(project=cfg.wandb_project, config=asdict(cfg), dir=str(self.out))

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, extra: dict[str, Any] | None = None) -> None:
        """Buffers are staged beside the files they replace, then the checkpoint that counts them is
        written, then they are renamed into place (robot_rl.run_dir: a kill -9 mid-save resumes)."""
        staged = [self.run_dir.stage(self.online, "online_buffer")]
        if self.demos is not None and self.demos.transitions_written != self._demos_saved_at:
            staged.append(self.run_dir.stage(self.demos, "demo_buffer"))  # only interventions add to it
        self.run_dir.write_lines("episodes.jsonl", self.episode_log)
        self._save_reward_frames()
        state = {
            "agent": self.agent.state_dict(), "env_steps": self.env_steps, "episodes": self.episodes,
            "online_transitions": self.online.transitions_written,
            "demo_transitions": self.demos.transitions_written if self.demos is not None else 0,
            "episode_log": self.episode_log,
            "human_rng": self.human.rng.bit_generator.state if self.human is not None else None,
            "evals": self.evals, "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "wall_s": self._wall(), **(extra or {}),
        }
        self.run_dir.commit(state, staged)
        if self.demos is not None:
            self._demos_saved_at = self.demos.transitions_written

    def _save_reward_frames(self) -> None:
        frames = getattr(self.env, "reviewed_frames", lambda: None)()
        if frames is None:
            return
        if self._prior_reward_frames is not None:  # kept before a resume
            frames = FrameDataset.concat(self._prior_reward_frames, frames)
        frames.save(self.out / "reward_frames.npz")

    def _load(self, path: Path) -> None:
        state = RunDir.read_checkpoint(path)
        if self.cfg.warm_start is not None:  # the frozen pre-trained actor is not in our checkpoint
            self.agent.warm_start(RunDir.read_checkpoint(self.cfg.warm_start)["agent"])
        try:
            self.agent.load_state_dict(state["agent"])
        except Exception as err:  # shapes or keys of another config
            raise ValueError(f"checkpoint {path} does not match this config: {err}") from err
        self.online = self.run_dir.load_buffer("online_buffer", state["online_transitions"])
        if self.run_dir.has_buffer("demo_buffer"):
            self.demos = self.run_dir.load_buffer("demo_buffer", state["demo_transitions"])
        self._demos_saved_at = self.demos.transitions_written if self.demos is not None else -1
        self.episode_log = state.get("episode_log", [])
        self._human_rng = state.get("human_rng")
        self.env_steps, self.episodes, self.evals = state["env_steps"], state["episodes"], state["evals"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.wall_offset = state["wall_s"]

    # -- learning --------------------------------------------------------------------------------
    def _wall(self) -> float:
        return self.wall_offset + time.perf_counter() - self._start

    def _sample(self) -> list[Batch]:
        """`utd` batches: online data, the demo/intervention share (RLPD), and hybrid sim samples."""
        cfg, size = self.cfg, self.cfg.agent.batch_size
        has_demos = self.demos is not None and len(self.demos) > 0
        n_sim = int(round(size * cfg.hybrid.sim_fraction)) \
            if self.hybrid is not None and len(self.hybrid.buffer) >= size else 0
        n_demo = int(round((size - n_sim) * cfg.demo_ratio)) if has_demos else 0
        n, gamma = cfg.agent.n_step, cfg.agent.discount
        batches = []
        for _ in range(cfg.agent.utd):
            batch = self.online.sample(size - n_demo - n_sim, self.rng, n, gamma)
            if n_demo:
                batch = Batch.concat(batch, self.demos.sample(n_demo, self.rng, n, gamma))
            if n_sim:  # H2O: simulator transitions, weighted by how real their dynamics look
                batch = self.hybrid.mix(batch, self.online, n_sim, self.rng, n, gamma)
            batches.append(batch)
        return batches

    def _update(self) -> dict[str, float]:
        cfg = self.cfg
        actor_from = cfg.learning_starts + cfg.critic_warmup_steps
        if cfg.anchor_weight > 0:  # decays once the actor updates
            self.agent.set_anchor_weight(cfg.anchor_weight * max(0.0, 1.0 - (self.env_steps - actor_from) / cfg.anchor_steps))
        metrics = self.agent.update(self._sample(), actor=self.env_steps >= actor_from)
        return metrics | (self.hybrid.metrics if self.hybrid is not None else {})

    def _behaviour(self, obs: dict) -> tuple[np.ndarray, bool]:
        """What acts: uniform noise for random_steps, then the agent; the human overrides when it drives."""
        cfg = self.cfg
        if self.env_steps < cfg.random_steps:
            action = self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
        else:
            action = self.agent.act(flatten_obs(obs))
        if self.human is None:
            return action, False
        human_action = self.human.act(action)
        if self.human.started and cfg.human.takeover_penalty and self._episode_length > 0:
            self.online.add_to_last_reward(-cfg.human.takeover_penalty)  # the step that made it step in
        return (action, False) if human_action is None else (human_action, True)

    def _log(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if self._writer is not None:
                self._writer.add_scalar(key, value, self.env_steps)
        if self._wandb is not None:
            self._wandb.log(metrics, step=self.env_steps)

    def _evaluate(self, metrics: dict[str, float], x: str = "env_step") -> dict:
        """Deterministic evaluation, recorded in eval.jsonl, the logs and the learning curve."""
        cfg = self.cfg
        result = evaluate(self.agent, self.eval_env, cfg.eval_episodes, seed=2_000_000_000 + cfg.seed)
        result.update(env_step=self.env_steps, updates=self.agent.updates, wall_s=self._wall())
        self.evals.append(result)
        self.run_dir.write_lines("eval.jsonl", self.evals)
        self._log({f"eval/{k}": v for k, v in result.items() if k != "env_step"}
                  | {f"train/{k}": v for k, v in metrics.items()})
        name = f"{cfg.agent.name.upper()} " if cfg.agent.name != "sac" else ""
        plot_learning_curve(self.evals, self.out / "learning_curve.png", f"{name}{cfg.env.id} ({cfg.obs_mode})", x=x)
        return result

    def _finish(self) -> dict:
        self.save()
        if self._writer is not None:
            self._writer.close()
        return {"env_steps": self.env_steps, "updates": self.agent.updates, "wall_s": self._wall(),
                "evals": self.evals}

    def run(self) -> dict:
        """Train to total_env_steps (an offline agent: to its update budget), then release the envs
        (a robot env's ROS 2 node and its spinning thread included)."""
        self._start = time.perf_counter()
        try:
            return self._run_offline() if self.agent.offline else self._run_online()
        finally:
            self.close()

    def close(self) -> None:
        for name in ("env", "eval_env"):
            env = getattr(self, name, None)
            if env is not None:
                env.close()
                setattr(self, name, None)
        if getattr(self, "hybrid", None) is not None:
            self.hybrid.close()

    def _run_offline(self) -> dict:
        """Gradient steps on the demos/dataset only (BC, IQL, Cal-QL), evaluated five times."""
        agent_cfg = self.cfg.agent
        total = agent_cfg.updates
        returns_to_go = self.demos.returns_to_go(agent_cfg.discount) if self.agent.returns_to_go else None
        every = max(total // 5, 1)
        while self.agent.updates < total:
            batch = self.demos.sample(agent_cfg.batch_size, self.rng, agent_cfg.n_step, agent_cfg.discount,
                                      returns_to_go)
            metrics = self.agent.update([batch])
            if self.agent.updates % every == 0 or self.agent.updates == total:
                self._evaluate(metrics, x="updates")
        return self._finish()

    def _run_online(self) -> dict:
        cfg = self.cfg
        progress = None
        if cfg.progress:
            from tqdm import tqdm

            progress = tqdm(total=cfg.total_env_steps, initial=self.env_steps, unit="step",
                            dynamic_ncols=True, file=sys.stderr)
        metrics: dict[str, float] = {}
        last_checkpoint = self.env_steps
        while self.env_steps < cfg.total_env_steps:
            obs, _ = self.env.reset(seed=cfg.seed * 1_000_003 + self.episodes)
            self.online.start_episode(obs)
            if self.human is not None:
                self.human.reset()
            self._episode_length, episode_return, interventions, takeovers = 0, 0.0, 0, 0
            for step in episode_steps(self.env, self._behaviour, obs):
                if self.human is not None and cfg.human.intervention_reward:  # RLIF
                    step.reward = -1.0 if self.human.started else 0.0
                self.online.add(step.action, step.reward, step.next_obs, step.terminated, step.truncated,
                                intervened=step.intervened, gripper_toggled=step.gripper_toggled)
                if self.segments is not None:
                    self.segments.step(obs, step.action, step.reward, step.next_obs, step.terminated,
                                       step.truncated, step.intervened, step.gripper_toggled)
                obs = step.next_obs
                self.env_steps += 1
                self._episode_length += 1
                if self.hybrid is not None:
                    self.hybrid.steps(self.agent)
                episode_return += step.reward
                interventions += int(step.intervened)
                takeovers += int(self.human is not None and self.human.started)
                if len(self.online) >= cfg.learning_starts:
                    metrics = self._update()
                if step.done:
                    self.episodes += 1
                    length = self._episode_length
                    record = {"env_step": self.env_steps, "success": bool(step.info["success"]),
                              "true_success": bool(step.info.get("true_success", step.info["success"])),
                              "return": episode_return, "length": length,
                              "intervention_rate": interventions / length, "takeovers": takeovers}
                    self.episode_log.append(record)
                    self._log({"train/episode_return": episode_return, "train/success": float(record["success"]),
                               "train/intervention_rate": record["intervention_rate"], "train/takeovers": takeovers})
                if self.env_steps % cfg.eval_every == 0 or self.env_steps == cfg.total_env_steps:
                    result = self._evaluate(metrics)
                    if progress is not None:
                        progress.set_postfix(success=f"{result['success_rate']:.0%}", updates=self.agent.updates)
                # Checkpoint at episode boundaries only: a resumed run starts a fresh episode.
                if step.done and self.env_steps - last_checkpoint >= cfg.checkpoint_every:
                    self.save()
                    last_checkpoint = self.env_steps
                if progress is not None:
                    progress.update(1)
                if self.env_steps >= cfg.total_env_steps:
                    break
        if progress is not None:
            progress.close()
        return self._finish()
