"""Base class of the MuJoCo manipulation tasks: config, observation and action spaces, the control
loop (action -> safety filter -> impedance law -> physics), rendering and domain randomisation.

Observation dict (see shared DESIGN): `proprio` (float32, layout in `metadata["proprio_layout"]`);
`object` (float32 task state, obs_mode "state"); `images` ({camera: uint8 HxWx3}, obs_mode "pixels");
`privileged` (float32, sim-only full task state, when `privileged=True`).

An episode ends with `terminated=True` on success and with `truncated=True` when the step budget runs
out first: learners must bootstrap through truncation. Rewards: "sparse" is 1 on the success step and 0
otherwise; "dense" is task progress minus 1 on every other step (in [-1, 0)) and 0 on success, so that
finishing sooner always pays (a positive shaped reward would pay the policy to hover short of success).
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from controllers.actions import ActionSpec, action_to_command, validate_action
from controllers.impedance import ImpedanceGains
from controllers.safety import SafetyFilter, SafetyLimits, SafetyStatus
from sim.arm import HOME_QPOS, MAX_GRIPPER_WIDTH, SimArm
from sim.randomization import DomainRandomizer, Randomization, RandomizationSample

ASSETS = Path(__file__).resolve().parent.parent / "assets"
OBS_MODES = ("state", "pixels")
REWARDS = ("sparse", "dense")
PROPRIO_LAYOUT = (
    ("ee_position", 3),  # m, base frame
    ("ee_rotation_error", 3),  # rotation vector from the reference (gripper-down) orientation
    ("ee_linear_velocity", 3),  # m/s
    ("ee_angular_velocity", 3),  # rad/s
    ("gripper_width", 1),  # m
)


@dataclass(frozen=True)
class TaskConfig:
    obs_mode: str = "state"
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 128
    control_hz: float = 10.0
    physics_hz: float = 500.0
    relinearize_hz: float = 100.0
    episode_steps: int = 100
    reward: str = "sparse"
    privileged: bool = False
    action: ActionSpec = field(default_factory=ActionSpec)
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    gains: ImpedanceGains = field(default_factory=ImpedanceGains)
    randomization: Randomization = field(default_factory=Randomization)

    def __post_init__(self) -> None:
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"TaskConfig.obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"TaskConfig.reward must be one of {REWARDS}, got {self.reward!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if self.obs_mode == "pixels" and not self.cameras:
            raise ValueError("TaskConfig.cameras must name at least one camera for obs_mode='pixels'")
        if not (isinstance(self.image_size, int) and 16 <= self.image_size <= 480):
            raise ValueError(f"TaskConfig.image_size must be an int in [16, 480], got {self.image_size!r}")
        if not (0 < self.control_hz <= 100):
            raise ValueError(f"TaskConfig.control_hz must be in (0, 100], got {self.control_hz}")
        if not (self.physics_hz >= 500):
            raise ValueError(f"TaskConfig.physics_hz must be >= 500 (impedance rate), got {self.physics_hz}")
        for name, rate in (("control_hz", self.control_hz), ("relinearize_hz", self.relinearize_hz)):
            ratio = self.physics_hz / rate if rate > 0 else 0
            if rate <= 0 or abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
                raise ValueError(
                    f"TaskConfig.{name}={rate} must divide physics_hz={self.physics_hz} into whole steps"
                )
        if self.relinearize_hz < self.control_hz:
            raise ValueError("TaskConfig.relinearize_hz must be >= control_hz")
        if not (isinstance(self.episode_steps, int) and self.episode_steps >= 1):
            raise ValueError(f"TaskConfig.episode_steps must be a positive int, got {self.episode_steps!r}")
        for name, kind in (("action", ActionSpec), ("safety", SafetyLimits), ("gains", ImpedanceGains),
                           ("randomization", Randomization)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, kind(**value))
            elif not isinstance(value, kind):
                raise ValueError(f"TaskConfig.{name} must be a {kind.__name__} or a dict of its fields")

    @property
    def substeps(self) -> int:
        return int(round(self.physics_hz / self.control_hz))


def build_config(defaults: TaskConfig, overrides: dict[str, Any]) -> TaskConfig:
    """`defaults` with `overrides` applied; unknown keys name the valid ones."""
    known = {f.name for f in dataclasses.fields(TaskConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown TaskConfig field(s) {unknown}; valid fields: {sorted(known)}")
    return dataclasses.replace(defaults, **overrides)


class ManipulationEnv(gym.Env):
    """Subclasses set XML, OBJECT_BODIES, COLORED_GEOMS, DEFAULT_CONFIG and the task hooks."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    XML: str = ""
    INSTRUCTION: str = ""  # the task in words, for language-conditioned reward labelers
    OBJECT_BODIES: tuple[str, ...] = ()
    COLORED_GEOMS: tuple[str, ...] = ("table",)
    DEFAULT_CONFIG = TaskConfig()
    OBJECT_STATE_DIM = 0
    ARM_START_CENTER = np.array([0.45, 0.0, 0.25])
    ARM_START_HALF_RANGE = np.array([0.05, 0.08, 0.04])

    def __init__(self, config: TaskConfig | None = None, render_mode: str | None = None, **overrides):
        if config is not None and not isinstance(config, TaskConfig):
            raise ValueError(f"config must be a TaskConfig, got {type(config).__name__}")
        self.config = build_config(config or self.DEFAULT_CONFIG, overrides)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        cfg = self.config
        self.model = mujoco.MjModel.from_xml_path(str(ASSETS / self.XML))
        self.model.opt.timestep = 1.0 / cfg.physics_hz
        self.data = mujoco.MjData(self.model)
        camera_names = [self.model.camera(i).name for i in range(self.model.ncam)]
        missing = [c for c in cfg.cameras if c not in camera_names]
        if missing:
            raise ValueError(f"TaskConfig.cameras: unknown camera(s) {missing}; this task has {camera_names}")
        self.arm = SimArm(self.model, self.data, cfg.gains,
                          substeps_per_update=int(round(cfg.physics_hz / cfg.relinearize_hz)))
        self.safety = SafetyFilter(cfg.safety)
        self.randomizer = DomainRandomizer(self.model, cfg.randomization, list(self.OBJECT_BODIES),
                                           self.arm.dof_adr, list(self.COLORED_GEOMS))
        self._reference_rotation = np.asarray(cfg.safety.reference_rotation, dtype=float).reshape(3, 3)
        self._renderer: mujoco.Renderer | None = None
        self._render_option = mujoco.MjvOption()
        self._sample = RandomizationSample()
        self._domain_shift: RandomizationSample | None = None
        self._pending_actions: collections.deque = collections.deque()
        self._steps = 0
        self.metadata = {**self.metadata, "render_fps": cfg.control_hz,
                         "proprio_layout": PROPRIO_LAYOUT, "action_names": cfg.action.names}

        spaces: dict[str, gym.Space] = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (sum(n for _, n in PROPRIO_LAYOUT),), np.float32)
        }
        if cfg.obs_mode == "state":
            spaces["object"] = gym.spaces.Box(-np.inf, np.inf, (self.OBJECT_STATE_DIM,), np.float32)
        else:
            size = (cfg.image_size, cfg.image_size, 3)
            spaces["images"] = gym.spaces.Dict(
                {cam: gym.spaces.Box(0, 255, size, np.uint8) for cam in cfg.cameras}
            )
        if cfg.privileged:
            spaces["privileged"] = gym.spaces.Box(-np.inf, np.inf, (self.OBJECT_STATE_DIM,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (cfg.action.dim,), np.float32)

    # -- task hooks (subclasses) -----------------------------------------------------------------
    def _reset_task(self, rng: np.random.Generator) -> None:
        """Place objects (and the arm if the task needs to) after the arm start pose is set."""

    def _object_state(self) -> np.ndarray:
        raise NotImplementedError

    def _success(self) -> bool:
        raise NotImplementedError

    def _dense_reward(self) -> float:
        """Task progress in [0, 1) for a step that did not succeed."""
        raise NotImplementedError

    def _gripper_command(self, command_opening: float | None) -> float | None:
        """Gripper opening to apply this step; tasks without a gripper action override this."""
        return command_opening

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self._sample = self._domain_shift if self._domain_shift is not None else self.randomizer.sample(rng)
        self.randomizer.apply(self._sample, d)
        self.arm.set_gains(self.config.gains.scaled(self._sample.gain_scale))

        start = self.ARM_START_CENTER + rng.uniform(-1, 1, 3) * self.ARM_START_HALF_RANGE
        yaw = rng.uniform(-0.1, 0.1)
        start_rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        start_rot = start_rot @ self._reference_rotation
        self.arm.set_joints(self.arm.inverse_kinematics(start, start_rot, HOME_QPOS))
        mujoco.mj_forward(m, d)
        self._reset_task(rng)
        mujoco.mj_forward(m, d)
        self.safety.reset(self.arm.ee_position, self._reference_rotation, now=d.time)
        self._target_pos, self._target_rot, _ = self.safety.output(d.time, self.arm.ee_position,
                                                                   self.arm.ee_rotation)
        self._gripper_opening = float(self.arm.data.ctrl[self.arm.gripper_actuator] / MAX_GRIPPER_WIDTH)
        hold = np.zeros(self.config.action.dim)
        if self.config.action.gripper and self.config.action.gripper_mode == "absolute":
            hold[-1] = 2.0 * self._gripper_opening - 1.0  # toggle mode: 0 already means "stay"
        self._pending_actions = collections.deque([hold] * self._sample.action_latency_steps)
        self._steps = 0
        info = {"success": False, "randomization": self._sample.as_dict()}
        return self._observation(), info

    def set_domain_shift(self, sample: RandomizationSample | None) -> None:
        """Use this fixed shift at every reset from now on instead of randomising (None: back to the
        config's randomisation). This is how a stand-in for a real robot differs from the sim."""
        self._domain_shift = sample

    def step(self, action):
        cfg = self.config
        action = np.clip(validate_action(action, cfg.action), -1.0, 1.0)
        self._pending_actions.append(action)
        applied = self._pending_actions.popleft()  # == action unless latency is randomised

        # Deltas move the previous target, not the measured pose: motion that the arm's dynamics
        # add on an axis the action leaves at zero is then corrected instead of kept.
        command = action_to_command(applied, cfg.action, self._target_pos, self._target_rot,
                                    current_opening=self._gripper_opening)
        target_rot = command.rotation if cfg.action.rotation else self._reference_rotation
        status = self.command_pose(command.position, target_rot)
        toggled = self.command_gripper(command.gripper)
        hold = self.advance()
        reward, success, unstable = self.outcome()
        terminated = success
        truncated = (not terminated) and (self._steps >= cfg.episode_steps or unstable)
        info = {
            "physics_unstable": unstable,
            "gripper_toggled": toggled,  # the gripper switched between open and closed this step
            "success": success,
            "is_success": success,
            # The command sent, as a robot reports it: with latency it acts `action_latency_steps` later,
            # and a learner that stored the delayed one would credit this step's state to an old command.
            "executed_action": action.astype(np.float32),
            "applied_action": applied.astype(np.float32),  # the command acting on the arm this step
            "safety": {k: v for k, v in vars(status).items() if v} | {k: v for k, v in vars(hold).items() if v},
        }
        return self._observation(), reward, terminated, truncated, info

    # -- robot-side interface: absolute targets (the ROS 2 sim node drives the arm through these) -----
    def command_pose(self, position, rotation) -> SafetyStatus:
        """An absolute end-effector target (base frame) through this arm's safety filter, tracked from
        the next `advance` on. Returns what the filter did to it."""
        return self.safety.submit(position, rotation, now=self.data.time, measured_position=self.arm.ee_position)

    def command_gripper(self, opening: float | None) -> bool:
        """Gripper opening in [0, 1] (None: keep). Returns whether it switched between open and closed."""
        opening = self._gripper_command(opening)
        if opening is None:
            return False
        toggled = (opening >= 0.5) != (self._gripper_opening >= 0.5)
        self._gripper_opening = opening
        self.arm.set_gripper(opening)
        return toggled

    def advance(self) -> SafetyStatus:
        """One control period of physics towards the safety filter's output: the last target, or the
        hold pose once no target came for `command_timeout_s` (sim time) or the e-stop is engaged."""
        target_pos, target_rot, hold = self.safety.output(self.data.time, self.arm.ee_position,
                                                          self.arm.ee_rotation)
        self._target_pos, self._target_rot = target_pos, target_rot
        self.arm.step(target_pos, target_rot, self.config.substeps)
        self._steps += 1
        return hold

    def outcome(self) -> tuple[float, bool, bool]:
        """(reward, success, physics_unstable) of the present state."""
        # MuJoCo resets the state itself when the physics diverges; never pass that off as an episode.
        unstable = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > 0
        success = self._success() and not unstable
        if self.config.reward == "sparse":
            reward = float(success)
        else:  # shaped progress minus 1: every step costs, so finishing (reward 0) beats hovering
            reward = 0.0 if success else self._dense_reward() - 1.0
        return reward, success, bool(unstable)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera(self.config.cameras[0] if self.config.cameras else "front")

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- observations ----------------------------------------------------------------------------
    def render_camera(self, camera: str) -> np.ndarray:
        if self._renderer is None:
            size = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, size, size)
            # Shadows and reflections off (MSAA is off in the model: offsamples=0): ~8x faster on
            # software GL, and a 128x128 policy input gains nothing from them.
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._renderer.update_scene(self.data, camera=camera, scene_option=self._render_option)
        return self._renderer.render()

    def _proprio(self) -> np.ndarray:
        from controllers.rotations import rotation_error

        velocity = self.arm.ee_velocity()
        return np.concatenate([
            self.arm.ee_position,
            rotation_error(self.arm.ee_rotation, self._reference_rotation),
            velocity,
            [self.arm.gripper_width],
        ])

    def _observation(self) -> dict:
        noise = self._sample.observation_noise_std
        rng = self.np_random
        proprio = self._proprio()
        obs: dict[str, Any] = {}
        if noise > 0:
            proprio = proprio + rng.normal(0.0, noise, proprio.shape)
        obs["proprio"] = proprio.astype(np.float32)
        task_state = self._object_state()
        if self.config.obs_mode == "state":
            noisy = task_state + rng.normal(0.0, noise, task_state.shape) if noise > 0 else task_state
            obs["object"] = noisy.astype(np.float32)
        else:
            obs["images"] = {cam: self.render_camera(cam) for cam in self.config.cameras}
        if self.config.privileged:
            obs["privileged"] = task_state.astype(np.float32)
        return obs

    def _perceived(self, position: np.ndarray) -> np.ndarray:
        """An object position as the policy observes it (with a stand-in's tracker bias)."""
        return position + np.asarray(self._sample.object_position_bias, dtype=float)

    def task_state(self) -> np.ndarray:
        """The task's object state (float32, noise-free): what `obs["object"]` holds in state mode."""
        return self._object_state().astype(np.float32)

    # -- helpers for tasks and experts -----------------------------------------------------------
    def body_position(self, name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(name).id].copy()

    def body_quaternion(self, name: str) -> np.ndarray:
        quat = self.data.xquat[self.model.body(name).id].copy()
        return quat if quat[0] >= 0 else -quat

    def set_free_body_pose(self, joint: str, position, quat) -> None:
        adr = self.model.jnt_qposadr[self.model.joint(joint).id]
        self.data.qpos[adr:adr + 3] = position
        self.data.qpos[adr + 3:adr + 7] = quat
        dof = self.model.jnt_dofadr[self.model.joint(joint).id]
        self.data.qvel[dof:dof + 6] = 0.0

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def gripper_opening(self) -> float:
        """The commanded gripper opening, 0 (closed) to 1 (open)."""
        return self._gripper_opening

    @property
    def target_position(self) -> np.ndarray:
        """The end-effector position the controller is tracking (after the safety filter)."""
        return self._target_pos.copy()

    @property
    def target_rotation(self) -> np.ndarray:
        """The end-effector orientation the controller is tracking (after the safety filter)."""
        return self._target_rot.copy()
