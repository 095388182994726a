"""RobotEnv: a gymnasium env that drives any robot through the ROS 2 topics of hardware/ros/topics.py,
a `sim_robot_node` or a real arm's bridge alike; the policy cannot tell which.

Each `step(action)`: the action becomes an absolute end-effector target exactly as in the in-process
sim (`controllers.action_to_command` from the previous target), passes this side's safety filter, and
is published (target pose, then the gripper opening). Then the env waits for the next observation:
- real-time robots (`lockstep=False`): until the next tick of a fixed `control_hz` clock (an overrun
  is counted, never slept off), then takes the newest message of every topic it observes, each no
  older than `max_observation_age_s`, else waits for fresher ones up to `observation_timeout_s`;
- lockstep simulators: until every observed topic has a message received after the command.
The observation dict matches the in-process task's (`proprio`, `object` or `images`), so policies,
buffers and checkpoints move between the two unchanged. `info["observation_age_s"]` is the age of the
oldest part (wall clock: robot and learner clocks must agree, e.g. via chrony/PTP).

Rewards: `success` (std_msgs/Bool) ends the episode (terminated); the reward is 1 on success ("sparse")
or the `reward` topic ("topic": a sim's dense reward or a reward node). The episode is truncated after
`episode_steps`. `reset()` calls the robot's `reset` service.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, Float32MultiArray, Float64, String
from std_srvs.srv import Trigger

from controllers.actions import ActionSpec, action_to_command, validate_action
from controllers.rotations import rotation_error
from controllers.safety import SafetyFilter, SafetyLimits
from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.runtime import BackgroundNode

PROPRIO_DIM = 13  # ee position 3, rotation error 3, linear velocity 3, angular velocity 3, gripper width 1


@dataclass(frozen=True)
class RobotEnvConfig:
    namespace: str = "robot"
    obs_mode: str = "state"
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 64  # images are resized to this square (crop first with `crop`, per camera)
    control_hz: float = 10.0
    lockstep: bool = False  # the robot is a sim_robot_node started with lockstep:=true
    episode_steps: int = 100
    object_state_dim: int = 0  # > 0: observe `object_state` as obs["object"] (sim, or a tracker)
    # pixels: also read `object_state` as obs["privileged"], for an asymmetric critic to learn from on the
    # robot (a motion-capture or fiducial tracker that is there while training; the actor never reads it)
    privileged: bool = False
    reward: str = "sparse"  # "sparse": 1 on success; "topic": the `reward` topic
    # True: a reward node (or the sim) publishes `success` and every step waits for it. False: no reward
    # node; success is the operator's to say (teleop's success/failure keys) and reads False here.
    success_topic: bool = True
    max_gripper_width: float = 0.08  # m: width / this = the gripper opening
    action: ActionSpec = field(default_factory=ActionSpec)
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    observation_timeout_s: float = 2.0
    max_observation_age_s: float = 0.2
    reset_timeout_s: float = 10.0
    domain_id: int | None = None  # None: ROS_DOMAIN_ID, else 0

    def __post_init__(self) -> None:
        def bad(name: str, why: str):
            raise ValueError(f"RobotEnvConfig.{name} {why}, got {getattr(self, name)!r}")

        object.__setattr__(self, "cameras", tuple(self.cameras))
        if self.obs_mode not in ("state", "pixels"):
            bad("obs_mode", "must be 'state' or 'pixels'")
        if self.obs_mode == "pixels" and not self.cameras:
            bad("cameras", "must name at least one camera for obs_mode 'pixels'")
        if self.privileged and (self.obs_mode != "pixels" or not self.object_state_dim):
            bad("privileged", "needs obs_mode 'pixels' and object_state_dim > 0 (the tracked object state)")
        if self.reward not in ("sparse", "topic"):
            bad("reward", "must be 'sparse' or 'topic'")
        if not 0 < self.control_hz <= 1000:
            bad("control_hz", "must be in (0, 1000]")
        for name in ("observation_timeout_s", "max_observation_age_s", "reset_timeout_s", "max_gripper_width"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if not (isinstance(self.episode_steps, int) and self.episode_steps >= 1):
            bad("episode_steps", "must be a positive int")
        for name, kind in (("action", ActionSpec), ("safety", SafetyLimits)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, kind(**value))

    @classmethod
    def for_task(cls, task: str, **overrides) -> RobotEnvConfig:
        """The config that observes and acts like the in-process sim task `task` does."""
        import sim

        task_cls = sim.TASKS.get(task.split("/", 1)[-1])
        if task_cls is None:
            raise ValueError(f"unknown task {task!r}; available: {sorted(sim.TASKS)}")
        defaults = task_cls.DEFAULT_CONFIG
        values: dict[str, Any] = {"control_hz": defaults.control_hz, "episode_steps": defaults.episode_steps,
                                  "object_state_dim": task_cls.OBJECT_STATE_DIM, "action": defaults.action,
                                  "safety": defaults.safety, "cameras": defaults.cameras}
        values.update(overrides)
        if values.get("obs_mode", "state") == "pixels" and not values.get("privileged"):
            values["object_state_dim"] = 0
        return cls(**values)


    @classmethod
    def from_profile(cls, profile, task: str | None = None, **overrides) -> RobotEnvConfig:
        """The config for a robot described by a `hardware.robots.RobotProfile`: its namespace, rate,
        action and safety limits; the observation layout of `task` (default: the profile's task)."""
        values: dict[str, Any] = {"namespace": profile.namespace, "control_hz": profile.control_hz,
                                  "action": profile.action, "safety": profile.safety,
                                  "lockstep": profile.bridge == "sim"}
        if profile.cameras:
            values["cameras"] = tuple(c.name for c in profile.cameras)
        return cls.for_task(task or profile.task, **{**values, **overrides})


class RobotUnavailable(ConnectionError):
    """The robot does not answer (no node on this namespace/domain, or it stopped publishing)."""


class ObservationTimeout(RobotUnavailable):
    pass


class _Latest:
    """Newest message per topic, with its receive time, shared with the spinning thread."""

    def __init__(self):
        self.cond = threading.Condition()
        self.values: dict[str, tuple[Any, float, float | None]] = {}  # topic: (value, received, stamp)
        self.received: collections.Counter[str] = collections.Counter()

    def put(self, topic: str, value, stamp: float | None = None) -> None:
        with self.cond:
            self.values[topic] = (value, time.monotonic(), stamp)
            self.received[topic] += 1
            self.cond.notify_all()


class RobotEnv(gym.Env):
    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, config: RobotEnvConfig):
        self.config = cfg = config
        self.action_space = gym.spaces.Box(-1.0, 1.0, (cfg.action.dim,), np.float32)
        spaces: dict[str, gym.Space] = {"proprio": gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)}
        if cfg.obs_mode == "state" and cfg.object_state_dim:
            spaces["object"] = gym.spaces.Box(-np.inf, np.inf, (cfg.object_state_dim,), np.float32)
        if cfg.obs_mode == "pixels":
            shape = (cfg.image_size, cfg.image_size, 3)
            spaces["images"] = gym.spaces.Dict({c: gym.spaces.Box(0, 255, shape, np.uint8) for c in cfg.cameras})
        if cfg.privileged:
            spaces["privileged"] = gym.spaces.Box(-np.inf, np.inf, (cfg.object_state_dim,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.safety = SafetyFilter(cfg.safety)
        self._reference = np.asarray(cfg.safety.reference_rotation, float).reshape(3, 3)
        self._latest = _Latest()
        self._steps = 0
        self._total_steps = 0
        self._scene_seeds = None  # the sim's parameter client, False for a robot without one
        self.overruns = 0
        self.robot_status: dict = {}

        self._ros = BackgroundNode("robot_env", namespace=cfg.namespace, domain_id=cfg.domain_id)
        self.node = self._ros.node
        sensor = qos.LOCKSTEP_SENSOR if cfg.lockstep else qos.SENSOR
        sub = self.node.create_subscription
        self._observed = [topics.EE_POSE, topics.EE_TWIST, topics.GRIPPER_WIDTH]
        if cfg.success_topic:
            self._observed.append(topics.SUCCESS)
        sub(PoseStamped, topics.EE_POSE, self._stamped(topics.EE_POSE, M.from_pose), sensor)
        sub(TwistStamped, topics.EE_TWIST, self._stamped(topics.EE_TWIST, M.from_twist), sensor)
        sub(Float64, topics.GRIPPER_WIDTH, lambda m: self._latest.put(topics.GRIPPER_WIDTH, float(m.data)), sensor)
        sub(Bool, topics.SUCCESS, lambda m: self._latest.put(topics.SUCCESS, bool(m.data)), qos.EVENT)
        sub(String, topics.STATUS, self._on_status, qos.EVENT)
        if cfg.reward == "topic":
            self._observed.append(topics.REWARD)
            sub(Float32, topics.REWARD, lambda m: self._latest.put(topics.REWARD, float(m.data)), qos.EVENT)
        if "object" in spaces or "privileged" in spaces:
            self._observed.append(topics.OBJECT_STATE)
            sub(Float32MultiArray, topics.OBJECT_STATE, self._on_object, sensor)
        if cfg.obs_mode == "pixels":
            for camera in cfg.cameras:
                name = topics.camera_image(camera)
                self._observed.append(name)
                sub(Image, name, self._stamped(name, self._decode_image), sensor)
        self.pub_pose = self.node.create_publisher(PoseStamped, topics.TARGET_POSE, qos.COMMAND)
        self.pub_gripper = self.node.create_publisher(Float64, topics.GRIPPER_COMMAND, qos.COMMAND)
        self.pub_estop = self.node.create_publisher(Bool, topics.ESTOP, qos.EVENT)
        self.reset_client = self.node.create_client(Trigger, topics.RESET)
        self.clear_estop_client = self.node.create_client(Trigger, topics.CLEAR_ESTOP)
        self.recover_client = self.node.create_client(Trigger, topics.RECOVER)
        self.rejected: dict[str, str] = {}  # topic: reason of the last malformed message
        self._ros.start()

    # -- incoming ----------------------------------------------------------------------------------
    def _stamped(self, topic: str, convert):
        def callback(msg):
            try:
                value = convert(msg)
            except M.MessageError as err:
                self._reject(topic, str(err))
                return
            self._latest.put(topic, value, M.from_stamp(msg.header.stamp))
        return callback

    def _on_object(self, msg) -> None:
        try:
            self._latest.put(topics.OBJECT_STATE, M.from_vector(msg, self.config.object_state_dim, "object_state"))
        except M.MessageError as err:
            self._reject(topics.OBJECT_STATE, str(err))

    def _on_status(self, msg) -> None:
        try:
            self.robot_status = json.loads(msg.data)
        except ValueError:
            self._reject(topics.STATUS, "not JSON")

    def _decode_image(self, msg) -> np.ndarray:
        rgb = M.from_image(msg)
        size = self.config.image_size
        if rgb.shape[:2] != (size, size):
            h, w = rgb.shape[:2]
            side = min(h, w)  # centre square crop, then resize
            top, left = (h - side) // 2, (w - side) // 2
            rgb = cv2.resize(rgb[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)
        return rgb

    def _reject(self, topic: str, reason: str) -> None:
        self.rejected[topic] = reason
        self.node.get_logger().warning(f"dropped a message on {topic}: {reason}", throttle_duration_sec=1.0)

    # -- observations ------------------------------------------------------------------------------
    def _wait_observation(self, received_after: float | None) -> tuple[dict, float]:
        """Every observed topic with a message received after `received_after` (lockstep / reset) or
        no older than max_observation_age_s (real time)."""
        cfg = self.config
        deadline = time.monotonic() + cfg.observation_timeout_s
        with self._latest.cond:
            while True:
                now = time.monotonic()
                wall = time.time()
                missing = []
                for topic in self._observed:
                    entry = self._latest.values.get(topic)
                    if entry is None:
                        missing.append(f"{topic} (nothing yet)")
                        continue
                    _, received, stamp = entry
                    if received_after is not None and received <= received_after:
                        missing.append(f"{topic} (none since the command)")
                    elif received_after is None and (now - received > cfg.max_observation_age_s or (
                            stamp is not None and wall - stamp > cfg.max_observation_age_s)):
                        missing.append(f"{topic} (older than {cfg.max_observation_age_s} s)")
                if not missing:
                    values = {t: self._latest.values[t] for t in self._observed}
                    break
                if now >= deadline:
                    raise ObservationTimeout(
                        f"no complete observation from {self.node.get_namespace()} within "
                        f"{cfg.observation_timeout_s} s; missing: {', '.join(missing)}. Is the robot node running "
                        f"with this namespace and ROS_DOMAIN_ID ({self._ros.domain_id})?")
                self._latest.cond.wait(deadline - now)
        stamps = [s for _, _, s in values.values() if s is not None]
        age = time.time() - min(stamps) if stamps else 0.0
        return values, age

    def _observation(self, values: dict) -> dict:
        position, rotation = values[topics.EE_POSE][0]
        linear, angular = values[topics.EE_TWIST][0]
        width = values[topics.GRIPPER_WIDTH][0]
        self._measured = (position, rotation, width)
        proprio = np.concatenate([position, rotation_error(rotation, self._reference), linear, angular, [width]])
        obs: dict[str, Any] = {"proprio": proprio.astype(np.float32)}
        if topics.OBJECT_STATE in values:
            obs["privileged" if self.config.privileged else "object"] = values[topics.OBJECT_STATE][0]
        if self.config.obs_mode == "pixels":
            obs["images"] = {c: values[topics.camera_image(c)][0] for c in self.config.cameras}
        return obs

    # -- gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cfg = self.config
        if not self.reset_client.wait_for_service(timeout_sec=cfg.reset_timeout_s):
            raise RobotUnavailable(
                f"no robot answers {self.node.get_namespace()}/{topics.RESET} within {cfg.reset_timeout_s} s: "
                f"start `robot-rl sim-robot --namespace {cfg.namespace.strip('/')}` (or the robot's bridge) with "
                f"ROS_DOMAIN_ID={self._ros.domain_id}")
        if seed is not None:
            self._request_scene_seed(seed)
        requested = time.monotonic()  # a sim publishes the new scene before it answers
        future = self.reset_client.call_async(Trigger.Request())
        if not self._wait_future(future, cfg.reset_timeout_s):
            raise RobotUnavailable(f"the robot's reset did not answer within {cfg.reset_timeout_s} s")
        answer = future.result()
        if not answer.success:
            raise RuntimeError(f"the robot's reset failed: {answer.message}")
        values, age = self._wait_observation(received_after=requested)
        obs = self._observation(values)
        position, rotation, width = self._measured
        now = self._filter_clock()
        self.safety.reset(position, self._reference, now=now)
        self._target_pos, self._target_rot, _ = self.safety.output(now, position, rotation)
        self._opening = float(np.clip(width / cfg.max_gripper_width, 0.0, 1.0))
        self._steps = 0
        self._next_tick = time.monotonic() + 1.0 / cfg.control_hz
        robot = json.loads(answer.message) if answer.message.startswith("{") else {}
        return obs, {"success": False, "observation_age_s": age, "robot": robot}

    def step(self, action):
        cfg = self.config
        action = np.clip(validate_action(action, cfg.action), -1.0, 1.0)
        position, rotation, _ = self._measured
        command = action_to_command(action, cfg.action, self._target_pos, self._target_rot,
                                    current_opening=self._opening)
        target_rot = command.rotation if cfg.action.rotation else self._reference
        now = self._filter_clock()
        status = self.safety.submit(command.position, target_rot, now=now, measured_position=position)
        self._target_pos, self._target_rot, hold = self.safety.output(now, position, rotation)
        toggled = False
        stamp = time.time()
        sent = time.monotonic()
        self.pub_pose.publish(M.to_pose(self._target_pos, self._target_rot, stamp))
        if command.gripper is not None:
            toggled = (command.gripper >= 0.5) != (self._opening >= 0.5)
            self._opening = command.gripper
            self.pub_gripper.publish(Float64(data=float(command.gripper)))
        if cfg.lockstep:
            values, age = self._wait_observation(received_after=sent)
        else:
            delay = self._next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
                self._next_tick += 1.0 / cfg.control_hz
            else:
                self.overruns += 1
                self._next_tick = time.monotonic() + 1.0 / cfg.control_hz
            values, age = self._wait_observation(received_after=None)
        obs = self._observation(values)
        success = bool(values[topics.SUCCESS][0]) if cfg.success_topic else False
        reward = values[topics.REWARD][0] if cfg.reward == "topic" else float(success)
        self._steps += 1
        self._total_steps += 1
        terminated = success
        # The robot holds itself (operator e-stop, wrench limit, its own reflex / protective stop): the
        # episode ends here, and the next reset waits for the operator where the fault needs one.
        faults = self.robot_status.get("faults") or {}
        truncated = not terminated and (self._steps >= cfg.episode_steps or bool(faults))
        info = {"success": success, "is_success": success, "executed_action": action.astype(np.float32),
                "gripper_toggled": toggled, "observation_age_s": age, "robot_faults": dict(faults),
                "safety": {k: v for k, v in vars(status).items() if v} | {k: v for k, v in vars(hold).items() if v}}
        return obs, reward, terminated, truncated, info

    def _request_scene_seed(self, seed: int) -> None:
        """A simulator robot draws the next scene from `seed` (its `scene_seed` parameter); a real robot
        has no such parameter and is left alone (looked up once)."""
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient

        if self._scene_seeds is None:
            client = AsyncParameterClient(self.node, f"{self.node.get_namespace().rstrip('/')}/sim_robot")
            self._scene_seeds = client if client.wait_for_services(timeout_sec=2.0) else False
        if self._scene_seeds:
            future = self._scene_seeds.set_parameters([Parameter("scene_seed", value=int(seed) % 2**31)])
            if not self._wait_future(future, self.config.reset_timeout_s) or not future.result().results[0].successful:
                raise RuntimeError(f"the simulator did not take scene seed {seed}")

    def _filter_clock(self) -> float:
        """The safety filter's time: wall clock for a real-time robot; for a lockstep sim, its own time
        (one control period per step), so that speed limits mean the same as in the sim."""
        if self.config.lockstep:
            return self._total_steps / self.config.control_hz
        return time.monotonic()

    @property
    def received(self) -> dict[str, int]:
        """Messages received per observed topic so far (e.g. to count dropped camera frames)."""
        with self._latest.cond:
            return dict(self._latest.received)

    @property
    def steps(self) -> int:
        return self._steps

    # -- operator ----------------------------------------------------------------------------------
    def estop(self) -> None:
        """Latch the robot's e-stop (it holds its pose until `clear_estop`)."""
        self.pub_estop.publish(Bool(data=True))

    def clear_estop(self, timeout_s: float = 5.0) -> str:
        return self._trigger(self.clear_estop_client, topics.CLEAR_ESTOP, timeout_s)

    def recover(self, timeout_s: float = 10.0) -> str:
        """The operator confirms that the robot may resume after its own safety stop (reflex, user or
        protective stop); returns the robot's answer."""
        return self._trigger(self.recover_client, topics.RECOVER, timeout_s)

    def _trigger(self, client, name: str, timeout_s: float) -> str:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f"no {name} service on {self.node.get_namespace()}")
        future = client.call_async(Trigger.Request())
        if not self._wait_future(future, timeout_s):
            raise RuntimeError(f"{name} timed out")
        return future.result().message

    def _wait_future(self, future, timeout_s: float) -> bool:
        event = threading.Event()
        future.add_done_callback(lambda _: event.set())
        return event.wait(timeout_s)

    def close(self) -> None:
        self._ros.close()


def make_robot_env(task: str, **overrides) -> RobotEnv:
    return RobotEnv(RobotEnvConfig.for_task(task, **overrides))

