"""sim_robot_node: a MuJoCo task (sim/) behind the topics a real arm's ROS 2 stack speaks.

It publishes joint states, the end-effector pose, twist and external wrench, the gripper width, camera
images (raw, and JPEG when someone subscribes) with camera info, and, as a simulator can, the object
state, reward and success; it takes an absolute end-effector target pose or a twist, a gripper opening,
an e-stop, and `reset` / `clear_estop` services. Topic names: hardware/ros/topics.py.

Every command passes the robot-side guard (frame, stamp age, finite values; dropped with a logged
reason) and then the arm's safety filter (workspace, step and rate limits, watchdog, e-stop), exactly
as on hardware. The watchdog holds the pose when no command came for `command_timeout_s`; an e-stop
latches until `clear_estop` is called.

Two clocks:
- real time (default): the physics advances one control period per timer tick, at `control_hz` times
  `real_time_factor` ticks per wall-clock second, whatever the commands do (a robot does not wait);
- lockstep (`lockstep:=true`): one control period per command (target pose, plus a gripper command
  for tasks with a gripper), for training as fast as the learner allows, with in-process semantics.

    robot-rl sim-robot --task PickCube-v0 --namespace robot [--lockstep] [--cameras front wrist]
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, Float64, String
from std_srvs.srv import Trigger

import sim
from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.guard import CommandChecks, CommandGuard
from hardware.ros.runtime import run_node
from sim.arm import ARM_JOINTS

# name: (default, description, range) - ranges are enforced by rclpy on set.
PARAMETERS = {
    "task": ("PickCube-v0", "sim task id (robot-rl tasks)", None),
    "cameras": (["front", "wrist"], "cameras to render and publish ([''] for none)", None),
    "image_size": (128, "rendered image width = height, pixels", (16, 480)),
    "control_hz": (10.0, "control periods per simulated second", (0.5, 100.0)),
    "real_time_factor": (1.0, "simulated seconds per wall-clock second (real-time clock only)", (0.05, 100.0)),
    "lockstep": (False, "advance one control period per command instead of on a timer", None),
    "seed": (0, "seed of the scene sequence (each reset draws the next scene)", (0, 2**31 - 1)),
    "reward": ("sparse", "'sparse' (1 on success) or 'dense' (shaped)", None),
    "command_timeout_s": (0.5, "watchdog: hold the pose when no command came for this long (sim time)",
                          (0.01, 10.0)),
    "max_command_age_s": (0.5, "drop commands stamped longer ago than this (wall clock)", (0.0, 10.0)),
    "jpeg_quality": (90, "quality of the compressed images", (1, 100)),
    "standin": ("", "a stand-in for a real robot (sim/standins name or YAML path): fixed shifted dynamics, "
                    "visuals, command latency and sensor noise at every reset; its task replaces `task`", None),
    # Settable at run time: RobotEnv.reset(seed=s) sets it before calling `reset`, so that a scene seeded
    # by the learner is the same scene as in the in-process sim.
    "scene_seed": (-1, "seed of the next reset's scene (-1: the next of the `seed` sequence); used once",
                   (-1, 2**31 - 1)),
}
RUNTIME_PARAMETERS = ("scene_seed",)


def _descriptor(name: str, description: str, bounds) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, description=description, read_only=name not in RUNTIME_PARAMETERS)
    if bounds is not None:
        low, high = bounds
        if isinstance(low, int):
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
    return descriptor


class SimRobotNode(Node):
    def __init__(self, *, namespace: str = "robot", parameters: dict | None = None, context=None):
        # ROS 2 cannot type an empty array: no cameras is [""].
        overrides = [Parameter(k, Parameter.Type.STRING_ARRAY, list(v) or [""]) if isinstance(v, (list, tuple))
                     else Parameter(k, value=v) for k, v in (parameters or {}).items()]
        super().__init__("sim_robot", namespace=namespace, parameter_overrides=overrides, context=context,
                         automatically_declare_parameters_from_overrides=False)
        unknown = sorted(set(parameters or {}) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"sim_robot_node: unknown parameter(s) {unknown}; known: {sorted(PARAMETERS)}")
        from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

        try:
            p = {name: self.declare_parameter(name, default, _descriptor(name, text, bounds)).value
                 for name, (default, text, bounds) in PARAMETERS.items()}
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            raise ValueError(f"sim_robot_node: {err}") from err
        if p["reward"] not in ("sparse", "dense"):
            raise ValueError(f"sim_robot_node: parameter reward must be 'sparse' or 'dense', got {p['reward']!r}")
        self.params = p
        cameras = tuple(c for c in p["cameras"] if c)
        self.standin = None
        if p["standin"]:
            from sim.standin import load_standin

            self.standin = load_standin(p["standin"])
            p["task"] = self.standin.task
        task_cls = sim.TASKS.get(p["task"].split("/", 1)[-1])
        if task_cls is None:
            raise ValueError(f"sim_robot_node: unknown task {p['task']!r}; available: {sorted(sim.TASKS)}")
        safety = dataclasses.replace(task_cls.DEFAULT_CONFIG.safety, command_timeout_s=p["command_timeout_s"])
        self.env = sim.make(p["task"], obs_mode="state", cameras=cameras or ("front",), image_size=p["image_size"],
                            control_hz=p["control_hz"], reward=p["reward"], safety=safety)
        if self.standin is not None:
            self.env.set_domain_shift(self.standin.sample_for(self.env))
        # A stand-in's command latency (control periods) and sensor noise: the node applies them, as the
        # robot-side API (command_pose/advance) bypasses the env's own step()-level latency and noise.
        self.latency = self.standin.action_latency_steps if self.standin is not None else 0
        self.noise_std = self.standin.observation_noise_std if self.standin is not None else 0.0
        self._delayed: collections.deque = collections.deque()
        self._incoming: list = [None, None]  # pose, gripper received since the last tick
        self.noise_rng = np.random.default_rng(p["seed"] + 1)
        self.cameras = cameras
        self.has_gripper = self.env.config.action.gripper
        self.lockstep = bool(p["lockstep"])
        self.guard = CommandGuard(CommandChecks(max_age_s=p["max_command_age_s"]),
                                  warn=lambda text: self.get_logger().warning(text, throttle_duration_sec=1.0))
        self.rng = np.random.default_rng(p["seed"])
        self.episode = -1
        self.ticks = 0
        self.frames_published = 0  # per camera
        self._pose_pending = False
        self._gripper_pending = False

        sensor = qos.LOCKSTEP_SENSOR if self.lockstep else qos.SENSOR
        pub = self.create_publisher
        self.pub_joints = pub(JointState, topics.JOINT_STATES, sensor)
        self.pub_pose = pub(PoseStamped, topics.EE_POSE, sensor)
        self.pub_twist = pub(TwistStamped, topics.EE_TWIST, sensor)
        self.pub_wrench = pub(WrenchStamped, topics.EE_WRENCH, sensor)
        self.pub_width = pub(Float64, topics.GRIPPER_WIDTH, sensor)
        self.pub_object = pub(Float32MultiArray, topics.OBJECT_STATE, sensor)
        self.pub_reward = pub(Float32, topics.REWARD, qos.EVENT)
        self.pub_success = pub(Bool, topics.SUCCESS, qos.EVENT)
        self.pub_status = pub(String, topics.STATUS, qos.EVENT)
        self.pub_images = {c: pub(Image, topics.camera_image(c), sensor) for c in cameras}
        self.pub_jpeg = {c: pub(CompressedImage, topics.camera_compressed(c), sensor) for c in cameras}
        self.pub_info = {c: pub(CameraInfo, topics.camera_info(c), sensor) for c in cameras}
        self.create_subscription(PoseStamped, topics.TARGET_POSE, self._on_pose, qos.COMMAND)
        self.create_subscription(TwistStamped, topics.TARGET_TWIST, self._on_twist, qos.COMMAND)
        self.create_subscription(Float64, topics.GRIPPER_COMMAND, self._on_gripper, qos.COMMAND)
        self.create_subscription(Bool, topics.ESTOP, self._on_estop, qos.EVENT)
        self.create_service(Trigger, topics.RESET, self._on_reset)
        self.create_service(Trigger, topics.CLEAR_ESTOP, self._on_clear_estop)
        self._reset_scene()
        if not self.lockstep:
            self.create_timer(1.0 / (p["control_hz"] * p["real_time_factor"]), self.tick)
        self.get_logger().info(
            f"{p['task']} on {self.get_namespace()}: {'lockstep' if self.lockstep else 'real-time'} clock at "
            f"{p['control_hz']} Hz control (x{p['real_time_factor']}), cameras {list(cameras)}")

    # -- clock -------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time()

    def tick(self) -> None:
        """One control period: the twist (if one is active) moves the target, the physics advances
        towards the safety filter's output, then everything is published with one stamp."""
        env = self.env
        period = 1.0 / self.params["control_hz"]
        # A twist moves the arm from where it is, not from the last target: integrating it into a target
        # the compliant arm lags behind winds up, and a velocity loop closed around that oscillates.
        target = self.guard.twist_target(env.arm.ee_position, env.arm.ee_rotation, period, self.now(),
                                         env.config.safety.command_timeout_s / self.params["real_time_factor"])
        if target is not None:
            env.command_pose(*target)
        if self.latency:  # commands act `latency` control periods after they arrive
            self._delayed.append(tuple(self._incoming))
            self._incoming = [None, None]
            if len(self._delayed) > self.latency:
                pose, opening = self._delayed.popleft()
                if pose is not None:
                    self._last_status = env.command_pose(*pose)
                if opening is not None:
                    env.command_gripper(opening)
        self._hold = env.advance()
        self.ticks += 1
        self._publish()

    # -- commands ----------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        pose = self.guard.pose(msg, self.now())
        if pose is None:
            return
        if self.latency:
            self._incoming[0] = pose
        else:
            self._last_status = self.env.command_pose(*pose)
        self._pose_pending = True
        self._lockstep_step()

    def _on_twist(self, msg: TwistStamped) -> None:
        if self.guard.twist(msg, self.now()):
            self._pose_pending = True
            self._lockstep_step()

    def _on_gripper(self, msg: Float64) -> None:
        opening = self.guard.gripper(msg)
        if opening is None:
            return
        if self.latency:
            self._incoming[1] = opening
        else:
            self.env.command_gripper(opening)
        self._gripper_pending = True
        self._lockstep_step()

    def _lockstep_step(self) -> None:
        if self.lockstep and self._pose_pending and (self._gripper_pending or not self.has_gripper):
            self._pose_pending = self._gripper_pending = False
            self.tick()

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.env.safety.estopped:
            self.env.safety.engage_estop(self.env.arm.ee_position, self.env.arm.ee_rotation)
            self.get_logger().warning("E-STOP engaged: holding the pose until clear_estop is called")
            self._publish_status()

    def _on_clear_estop(self, request, response):
        was = self.env.safety.estopped
        self.env.safety.clear_estop(self.env.arm.ee_position, self.env.arm.ee_rotation, now=self.env.data.time)
        response.success = True
        response.message = "e-stop cleared" if was else "e-stop was not engaged"
        self.get_logger().info(response.message)
        self._publish_status()
        return response

    def _on_reset(self, request, response):
        self._reset_scene()
        response.success = True
        response.message = json.dumps({"episode": self.episode, "seed": self._seed})
        return response

    def _reset_scene(self) -> None:
        self._seed = int(self.rng.integers(2**31))  # drawn even when overridden: the sequence stays put
        requested = self.get_parameter("scene_seed").value
        if requested >= 0:
            self._seed = int(requested)
            self.set_parameters([Parameter("scene_seed", value=-1)])
        self.env.reset(seed=self._seed)
        self.episode += 1
        self._pose_pending = self._gripper_pending = False
        self._delayed.clear()
        self._incoming = [None, None]
        self._hold = None
        self._last_status = None
        self._publish()

    # -- publishing --------------------------------------------------------------------------------
    def _publish(self) -> None:
        env, arm = self.env, self.env.arm
        stamp = self.now()
        self.frames_published += 1
        for camera in self.cameras:
            rgb = env.render_camera(camera)
            self.pub_images[camera].publish(M.to_image(rgb, stamp, camera))
            if self.pub_jpeg[camera].get_subscription_count() > 0:
                self.pub_jpeg[camera].publish(M.to_compressed(rgb, stamp, camera, self.params["jpeg_quality"]))
            fovy = float(env.model.cam_fovy[env.model.camera(camera).id])
            self.pub_info[camera].publish(M.camera_info(rgb.shape[1], rgb.shape[0], fovy, stamp, camera))
        effort = env.data.qfrc_actuator[arm.dof_adr]
        self.pub_joints.publish(M.to_joint_state(ARM_JOINTS, arm.q, arm.dq, effort, stamp))
        self.pub_pose.publish(M.to_pose(self._noisy(arm.ee_position), arm.ee_rotation, stamp))
        velocity = arm.ee_velocity()
        self.pub_twist.publish(M.to_twist(velocity[:3], velocity[3:], stamp))
        wrench = arm.external_wrench()
        self.pub_wrench.publish(M.to_wrench(wrench[:3], wrench[3:], stamp))
        self.pub_width.publish(Float64(data=arm.gripper_width))
        self.pub_object.publish(M.to_vector(self._noisy(env.task_state()), "object_state"))
        reward, success, unstable = env.outcome()
        self.pub_reward.publish(Float32(data=float(reward)))
        self.pub_success.publish(Bool(data=bool(success)))
        self._publish_status(unstable=unstable)

    def _noisy(self, values: np.ndarray) -> np.ndarray:
        if not self.noise_std:
            return values
        return (values + self.noise_rng.normal(0.0, self.noise_std, np.shape(values))).astype(np.asarray(values).dtype)

    def _publish_status(self, unstable: bool = False) -> None:
        hold = self._hold
        status = {"episode": self.episode, "tick": self.ticks, "frames_published": self.frames_published, "estop": self.env.safety.estopped,
                  "watchdog_hold": bool(hold is not None and hold.stale_hold), "physics_unstable": unstable,
                  "commands": self.guard.status()}
        if self._last_status is not None:
            status["last_command_filter"] = [k for k, v in vars(self._last_status).items() if v]
        self.pub_status.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        if hasattr(self, "env"):
            self.env.close()
        super().destroy_node()


def main(argv: list[str] | None = None, *, namespace: str = "robot", parameters: dict | None = None,
         domain_id: int | None = None) -> None:
    """Run the node until SIGINT/SIGTERM. `argv` may hold `--ros-args -p name:=value -r old:=new`."""
    run_node(lambda context: SimRobotNode(namespace=namespace, parameters=parameters, context=context),
             argv=argv, domain_id=domain_id)
