"""Actors and a learner in separate processes (or machines), over robot_rl.transport.

- An `Actor` runs the policy in its own env (a simulator here, a robot env on hardware) with the
  newest weights it has, checked every control step (weights never wait for an episode's end), and
  sends each finished episode to the learner as one batch: every frame once, uint8 images, per-step
  flags. The transport spools each batch (on disk by default) until the learner has checkpointed it,
  so an actor keeps acting while the learner is down and nothing is lost or counted twice.
- The `Learner` is the single-process `Trainer` (same agent, demos, 50/50 sampling, evaluation,
  checkpoints) fed by actors instead of its own env: it inserts whole episodes (so n-step returns
  stay within one episode), keeps the update-to-data ratio exact (critic updates <= utd x (env steps
  received - learning_starts + 1)), publishes weights every `publish_every` update calls, notices
  silent actors, and saves the transport's per-actor sequence numbers in its checkpoint before
  telling actors they may delete their spooled batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hardware.teleop import OperatorEvent
from robot_rl.agents import make_agent
from robot_rl.envs import make_env
from robot_rl.episode_replay import episode_to_replay
from robot_rl.episodes import Episode, episode_from_arrays, save_episode
from robot_rl.intervention import InterventionSegments, SimulatedHuman
from robot_rl.replay import ObsSpec, ReplayBuffer, flatten_obs
from robot_rl.rollout import episode_steps
from robot_rl.run_dir import RunDir
from robot_rl.train import TrainConfig, Trainer
from robot_rl.transport import ActorEndpoint, LearnerEndpoint, Message, require_security

log = logging.getLogger(__name__)

# What an actor must agree on with the learner: the observation/action layout and the networks.
ACTOR_CONFIG_FIELDS = ("env", "obs_mode", "image_size", "cameras", "action_history", "agent")


def config_hash(cfg: TrainConfig) -> str:
    values = {k: v for k, v in asdict(cfg).items() if k in ACTOR_CONFIG_FIELDS}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode()).hexdigest()[:16]


# -- actor -----------------------------------------------------------------------------------------
class Actor:
    """Acts in `make_env(cfg)` with the newest published weights; sends whole episodes."""

    def __init__(self, cfg: TrainConfig, endpoint: ActorEndpoint, actor_id: str,
                 episodes_dir: str | Path | None = None, human=None, console=None):
        """`human`: an intervention source (`robot_rl.intervention.TeleopHuman` for a device); by
        default the simulated human when `cfg.human.enabled`. `console`: a started
        `robot_rl.console.OperatorConsole` to show this actor and take the operator's events."""
        torch.set_num_threads(cfg.torch_threads)
        self.cfg, self.endpoint, self.actor_id = cfg, endpoint, actor_id
        self.env = make_env(cfg)
        obs, _ = self.env.reset(seed=cfg.seed)
        self.agent = make_agent(ObsSpec.from_obs(obs), self.env.action_space.shape[0], cfg.agent)
        if human is None and cfg.human.enabled:
            human = SimulatedHuman(self.env, cfg.env.id, cfg.human, seed=zlib.crc32(actor_id.encode()))
        self.human = human
        self.console = console
        self.paused = False
        self.policy_version = -1  # -1: still the random initial policy
        self.episodes_dir = Path(episodes_dir) if episodes_dir is not None else None
        self.rng = np.random.default_rng([cfg.seed, zlib.crc32(actor_id.encode())])
        self.steps = 0
        self.episodes = 0
        self.learner_done = False

    def _refresh_weights(self) -> None:
        latest = self.endpoint.latest_weights()
        if latest is not None and latest[0] != self.policy_version:
            self.agent.load_policy_state(latest[1])
            self.policy_version = latest[0]
        self.learner_done = bool(self.endpoint.weights_header.get("done", False))

    def _behaviour(self, obs: dict) -> tuple[np.ndarray, bool]:
        """Before each step: the transport, the newest weights, the operator's events; then the policy's
        action, or the human's while it drives."""
        cfg = self.cfg
        self.endpoint.pump()
        self._refresh_weights()
        self._versions.add(self.policy_version)
        self._events = self._operator_events()
        if OperatorEvent.PAUSE in self._events:
            self._hold_while_paused()
        if self.steps < cfg.random_steps:
            action = self.rng.uniform(-1, 1, self.env.action_space.shape[0]).astype(np.float32)
        else:
            action = self.agent.act(flatten_obs(obs))
        human_action = self.human.act(action) if self.human is not None else None
        if self.human is not None and self.human.started and self._rewards:
            self._rewards[-1] -= cfg.human.takeover_penalty  # the policy step that made the human step in
        return (action, False) if human_action is None else (human_action, True)

    def run_episode(self) -> dict[str, Any]:
        cfg = self.cfg
        seed = int(self.rng.integers(2**31))
        obs, _ = self.env.reset(seed=seed)
        observations, actions, intervened, toggles = [flatten_obs(obs)], [], [], []
        self._rewards, self._versions, self._events = [], set(), set()
        rewards = self._rewards
        stamps = [time.time()]
        info, terminated, truncated = {}, False, False
        start = time.time()
        takeovers, label = 0, None
        if self.human is not None:
            self.human.reset()
        for step in episode_steps(self.env, self._behaviour, obs):
            if self.human is not None and cfg.human.intervention_reward:  # RLIF
                step.reward = -1.0 if self.human.started else 0.0
            takeovers += int(self.human is not None and self.human.started)
            observations.append(flatten_obs(step.next_obs))
            stamps.append(time.time())
            actions.append(step.action)
            rewards.append(step.reward)
            intervened.append(step.intervened)
            toggles.append(step.gripper_toggled)
            self.steps += 1
            info, terminated, truncated = step.info, step.terminated, step.truncated
            # Reset / success / failure from the operator end the episode after this step, as a
            # time-limit cut (the policy's value there still bootstraps); labels go to the record.
            events = self._events
            if OperatorEvent.SUCCESS in events or OperatorEvent.FAILURE in events:
                label = "success" if OperatorEvent.SUCCESS in events else "failure"
            if label is not None or OperatorEvent.RESET in events or OperatorEvent.ESTOP in events:
                truncated = truncated or not terminated
            self._show(step.next_obs, len(actions), step.intervened)
            if terminated or truncated:
                break
        # The one form of an episode: what is sent, stored and loaded (robot_rl/episodes.py).
        episode = Episode(
            task=cfg.env.id, observations={k: np.stack([o[k] for o in observations]) for k in observations[0]},
            action=np.asarray(actions, np.float32).reshape(len(actions), -1),
            reward=np.asarray(rewards, np.float32), terminated=np.arange(len(actions)) == len(actions) - 1,
            truncated=np.zeros(len(actions), bool), intervened=np.asarray(intervened, bool),
            gripper_toggled=np.asarray(toggles, bool), timestamp=np.asarray(stamps, np.float64),
            reward_source=np.zeros(len(actions), np.uint8), reward_sources=["env"], actor_id=self.actor_id,
            policy_version=self.policy_version, seed=seed, success=bool(info.get("success", False)),
            operator_label=label)
        episode.terminated &= terminated
        episode.truncated[-1] = truncated
        header = {"actor_id": self.actor_id, "episode": self.episodes, "seed": seed,
                  "success": episode.success, "return": float(np.sum(rewards)),
                  "length": len(actions), "interventions": int(np.sum(intervened)), "takeovers": takeovers,
                  "policy_versions": sorted(self._versions), "started_unix_s": start, "ended_unix_s": time.time(),
                  "operator_label": label}
        if self.episodes_dir is not None:  # the permanent record, beside the transport's spool
            header["file"] = save_episode(episode, self.episodes_dir).name
        arrays = episode.to_arrays()
        self.endpoint.send_transitions(arrays, header)
        self.episodes += 1
        if self.console is not None:
            self.console.end_episode(header["success"], header["interventions"], header["length"])
        return header

    # -- the operator ------------------------------------------------------------------------------
    def _operator_events(self) -> set:
        events = set(getattr(self.human, "events", ()))  # a teleop device's buttons
        if self.console is not None:
            from_console = self.console.poll_events()
            if OperatorEvent.TAKEOVER in from_console:
                if hasattr(self.human, "toggle_takeover"):  # a teleop device: it drives from this step
                    self.human.toggle_takeover()
                else:
                    log.warning("%s: TAKEOVER from the console needs a teleop device (--teleop); ignored",
                                   self.actor_id)
            events.update(from_console)
        if OperatorEvent.ESTOP in events:  # the robot holds itself; this episode ends (RobotEnv sees the fault)
            if hasattr(self.env.unwrapped, "estop"):
                self.env.unwrapped.estop()
            else:
                log.warning("%s: E-STOP from the operator: this env has no robot e-stop; the episode ends", self.actor_id)
        return events

    def _hold_while_paused(self) -> None:
        """Paused: send no command at all (the robot holds its last target; on hardware the
        watchdog holds the pose), keep the transport alive, until PAUSE comes again."""
        self.paused = True
        self._status()
        while self.paused:
            self.endpoint.pump(50)
            if OperatorEvent.PAUSE in self._operator_events():
                self.paused = False
        self._status()

    def _show(self, obs: dict, step: int, intervening: bool) -> None:
        if self.console is None:
            return
        for camera, image in obs.get("images", {}).items():
            self.console.update_frame(camera, image)
        if "images" not in obs and step % 5 == 0 and hasattr(self.env.unwrapped, "render_camera"):
            self.console.update_frame("front", self.env.unwrapped.render_camera("front"))
        self._status(step=step, intervening=intervening)

    def _status(self, **fields) -> None:
        if self.console is not None:
            self.console.update_status(actor_id=self.actor_id, episode=self.episodes, paused=self.paused,
                                       policy_version=self.policy_version, **fields)

    def run(self, max_episodes: int | None = None, flush_s: float = 10.0) -> None:
        """Act until `max_episodes` (None: until the learner says it is done), then wait up to
        `flush_s` for the learner to checkpoint what is spooled; anything still spooled stays on
        disk and is sent by the next actor run with the same spool."""
        while (max_episodes is None or self.episodes < max_episodes) and not self.learner_done:
            header = self.run_episode()
            log.info("actor %s episode %d: return %.2f success %s (policy v%s, %d unacked)", self.actor_id,
                     header["episode"], header["return"], header["success"], self.policy_version,
                     self.endpoint.unacked)
        deadline = time.monotonic() + flush_s
        while self.endpoint.pending and time.monotonic() < deadline:
            self.endpoint.pump(50)

    def close(self) -> None:
        self.endpoint.close()
        self.env.close()


# -- learner ---------------------------------------------------------------------------------------
class Learner(Trainer):
    """The Trainer's learning half, fed by actors over the transport."""

    acts = False  # its actors act; it only learns

    def __init__(self, cfg: TrainConfig, bind_data: str, bind_weights: str, keys_dir: str | Path | None = None,
                 resume: bool = False, publish_every: int = 10, silent_after_s: float = 5.0):
        for address in (bind_data, bind_weights):  # before any work: a refused address costs nothing
            require_security(address, keys_dir, "learner")
        super().__init__(cfg, resume=resume)
        self.publish_every = publish_every
        self.silent_after_s = silent_after_s
        # Actors delete spooled episodes only once a checkpoint holds them (auto_commit=False).
        self.endpoint = LearnerEndpoint(bind_data, bind_weights, config_hash(self.cfg), keys_dir,
                                        auto_commit=False)
        checkpoint = self.out / "checkpoint.pt"
        if resume and checkpoint.exists():
            try:
                self.endpoint.load_state_dict(RunDir.read_checkpoint(checkpoint).get("transport", {"actors": {}}))
            except BaseException:  # no open sockets left behind (a zmq context with them never terminates)
                self.close()
                raise
        self.update_calls = 0
        self.actor_episodes: dict[str, int] = {}
        self._started = False
        self._done = False
        self._metrics: dict[str, float] = {}

    def save(self, extra: dict[str, Any] | None = None) -> None:
        """The checkpoint holds the per-actor sequence numbers of the episodes in its buffer; only
        once it is on disk may actors delete those episodes from their spools."""
        transport = self.endpoint.state_dict()
        super().save({**(extra or {}), "transport": transport})
        self.endpoint.commit(transport)

    def publish(self) -> None:
        """Weights versioned by critic updates, flagged `done` once the run has its env steps."""
        self.endpoint.publish_weights(self.agent.updates, self.agent.policy_state(), done=self._done)

    def _ingest(self, actor_id: str, msg: Message) -> None:
        try:
            episode = episode_from_arrays(msg.arrays, f"from actor {actor_id}")
            episode_to_replay(episode, self.online)
        except (KeyError, ValueError) as err:
            log.error("dropped an episode from actor %s: %s", actor_id, err)
            return
        if episode.num_interventions:  # and into the demo/intervention buffer (HIL-SERL)
            if self.demos is None:
                self.demos = ReplayBuffer(max(self.cfg.buffer_capacity // 2, 1000), self.obs_spec, self.action_dim)
            segments = InterventionSegments(self.demos)
            for t in range(episode.length):
                segments.step(episode.frame(t), episode.action[t], float(episode.reward[t]), episode.frame(t + 1),
                              bool(episode.terminated[t]), bool(episode.truncated[t]),
                              bool(episode.intervened[t]), bool(episode.gripper_toggled[t]))
            segments.close()
        self.env_steps += episode.length
        self.episodes += 1
        self.actor_episodes[actor_id] = self.actor_episodes.get(actor_id, 0) + 1
        episode_return = float(np.sum(episode.reward))
        self._log({f"actor/{actor_id}/episode_return": episode_return,
                   f"actor/{actor_id}/success": float(bool(episode.success)),
                   f"actor/{actor_id}/intervention_rate": float(np.mean(episode.intervened)),
                   "train/episode_return": episode_return})

    def _allowed_updates(self) -> int:
        if len(self.online) < self.cfg.learning_starts:
            return 0
        return self.cfg.agent.utd * (self.env_steps - self.cfg.learning_starts + 1)

    def start(self) -> None:
        """Publish the initial weights and start the clocks (once; `step`/`serve` call it)."""
        if self._started:
            return
        self._started = True
        self._start = time.perf_counter()
        self._next_eval = (self.env_steps // self.cfg.eval_every + 1) * self.cfg.eval_every
        self._last_checkpoint = self.env_steps
        self.publish()

    def step(self) -> None:
        """Receive what actors sent, then at most one update call (utd critic updates + the actor),
        then evaluation / checkpoint when due. Never blocks for more than ~20 ms."""
        cfg = self.cfg
        self.start()
        can_update = self.agent.updates < self._allowed_updates()
        for actor_id, msg in self.endpoint.poll(timeout_ms=0 if can_update else 20):
            if msg.kind == "transitions":
                self._ingest(actor_id, msg)
            elif msg.kind == "hello":
                log.info("actor %s joined", actor_id)
            elif msg.kind == "stats":
                self._log({f"actor/{actor_id}/{k}": float(v) for k, v in msg.header.items()
                           if isinstance(v, (int, float))})
        for actor_id in self.endpoint.silent_actors(self.silent_after_s):
            log.warning("actor %s silent for over %.0f s: learning goes on without it", actor_id,
                        self.silent_after_s)
            self.endpoint.forget(actor_id)
        if self.agent.updates < self._allowed_updates():
            actor = self.env_steps >= cfg.learning_starts + cfg.critic_warmup_steps
            self._metrics = self.agent.update(self._sample(), actor=actor)
            self.update_calls += 1
            if self.update_calls % self.publish_every == 0:
                self.publish()
        if self.env_steps >= self._next_eval:
            self._evaluate(self._metrics)
            self._next_eval = (self.env_steps // cfg.eval_every + 1) * cfg.eval_every
        if self.env_steps - self._last_checkpoint >= cfg.checkpoint_every:
            self.save()  # episodes arrive whole: any moment is an episode boundary here
            self._last_checkpoint = self.env_steps

    def serve(self, seconds: float) -> None:
        """`step` for about `seconds` (or until the step budget is reached), without finishing the run."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.env_steps < self.cfg.total_env_steps:
            self.step()

    def run(self) -> dict:
        """Learn until `total_env_steps` have arrived, then checkpoint, tell the actors to stop and
        keep answering them for a moment so the final episodes in flight are acknowledged."""
        while self.env_steps < self.cfg.total_env_steps:
            self.step()
        self.save()  # commit what arrived, so actors can empty their spools as they stop
        self._done = True  # from now on every weights broadcast tells the actors to stop
        self.publish()
        # Actors are never slowed down: fast simulators can outrun the learner, which then owes
        # updates. Pay them before finishing, so the run's UTD is what the config says.
        while self.agent.updates < self._allowed_updates():
            self.step()
        if self.evals and self.evals[-1]["env_step"] != self.env_steps:
            self._evaluate(self._metrics)
        result = self._finish()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            self.publish()
            self.endpoint.poll(timeout_ms=100)
        result["actor_episodes"] = dict(self.actor_episodes)
        return result

    def close(self) -> None:
        self.endpoint.close()
        super().close()
