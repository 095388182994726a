"""Franka FR3 / Panda through libfranka, with the `franky-control` package: no ROS controller needed.

franky's Cartesian impedance *tracking* motion runs libfranka's 1 kHz torque loop in C++; this bridge
streams the safety filter's output into it as the motion's reference at `bridge_hz`, with franky's own
error clipping (the law never sees a larger pose error than the clip), soft joint limits and optional
per-axis force constraints, all set from the profile's `driver` block. The robot's state is read from
libfranka (pose, external wrench, joints) and republished on our topics, the gripper goes through
franky's gripper client, and the robot's own safety state is watched: a reflex or user stop latches a
hold, ends the episode (RobotEnv sees `faults` in the status) and is recovered with franky's automatic
error recovery only when the operator calls `recover`.

    # profile: bridge: franky, driver: {hostname: 172.16.0.2, ...}    (fields: FrankyOptions)
    robot-rl bridge franka_fr3_franky

Tested end to end against franky-sim, a MuJoCo FR3 that serves libfranka's network protocol
(tests/test_franky.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from controllers.rotations import mat_to_quat, quat_to_mat
from hardware.robots.bridge import RobotBridge
from hardware.robots.profile import RobotProfile, build_section
from hardware.ros import messages as M

FR3_JOINT_NAMES = tuple(f"fr3_joint{i}" for i in range(1, 8))


@dataclass(frozen=True)
class FrankyOptions:
    """The `driver` block of a profile with `bridge: franky`."""

    hostname: str = "172.16.0.2"  # the robot's FCI address (franky-sim: 127.0.0.1)
    realtime: bool = True  # libfranka's real-time kernel check; false only for a simulator or a test box
    translational_stiffness: float = 1000.0  # N/m
    rotational_stiffness: float = 60.0  # N m/rad
    translational_error_clip: float = 0.05  # m per axis: the torque law never sees a larger error
    rotational_error_clip: float = 0.2  # rad per axis
    # [fx, fy, fz, tx, ty, tz] in N / N m, null: unconstrained (franky's CartesianImpedance force_constraints)
    force_constraints: tuple[float | None, ...] | None = None
    lower_joint_limits: tuple[float, ...] | None = None  # rad, soft limits (both or neither)
    upper_joint_limits: tuple[float, ...] | None = None
    gripper: bool = True  # a Franka Hand on the same host
    gripper_speed: float = 0.1  # m/s
    gripper_force: float = 40.0  # N, grasping
    # libfranka's collision thresholds (N m per joint / N per axis): above them the robot stops itself
    # with a reflex, which this bridge reports and recovers from only on the operator's word.
    torque_threshold: float = 20.0
    force_threshold: float = 30.0

    def __post_init__(self) -> None:
        for name in ("translational_stiffness", "rotational_stiffness", "translational_error_clip",
                     "rotational_error_clip", "gripper_speed", "gripper_force", "torque_threshold",
                     "force_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"driver.{name} must be a positive number, got {value!r}")
        if (self.lower_joint_limits is None) != (self.upper_joint_limits is None):
            raise ValueError("driver.lower_joint_limits and upper_joint_limits go together: give both or neither")
        if self.lower_joint_limits is not None and not (
                len(self.lower_joint_limits) == 7 == len(self.upper_joint_limits)
                and all(lo < hi for lo, hi in zip(self.lower_joint_limits, self.upper_joint_limits))):
            raise ValueError("driver.lower_joint_limits / upper_joint_limits must be 7 angles each, lower < upper")
        if self.force_constraints is not None and len(self.force_constraints) != 6:
            raise ValueError("driver.force_constraints must be 6 entries (N, N m or null)")

    @classmethod
    def from_profile(cls, profile: RobotProfile) -> FrankyOptions:
        return build_section(cls, profile.driver, f"robot profile {profile.name!r}: driver")


class FrankyBridge(RobotBridge):
    REQUIRED_TOPICS = ()

    def __init__(self, profile: RobotProfile, *, context=None):
        import franky  # the `franka` extra; imported here so other bridges need not have it

        self.errors = (franky._franky.Exception, franky.GripperException)  # what franky raises
        self.options = FrankyOptions.from_profile(profile)
        self._franky = franky
        realtime = franky.RealtimeConfig.Enforce if self.options.realtime else franky.RealtimeConfig.Ignore
        try:
            self.robot = franky.Robot(self.options.hostname, realtime_config=realtime)
        except self.errors as err:
            raise RuntimeError(f"could not connect to the Franka at {self.options.hostname!r}: {err}") from err
        self.robot.set_collision_behavior(self.options.torque_threshold, self.options.force_threshold)
        self.gripper = (_GripperWorker(franky.Gripper(self.options.hostname), self.options, self.errors)
                        if self.options.gripper else None)
        self._motion = None
        self._connection_error: str | None = None
        self._was_in_control = False  # libfranka takes a moment to take control after `move`
        super().__init__(profile, context=context)
        if self.gripper is not None:
            self.gripper.start(lambda width: self.pub_width.publish(Float64(data=width)),
                               lambda text: self.get_logger().warning(text, throttle_duration_sec=1.0))
        self._read_state()

    # -- state from libfranka ----------------------------------------------------------------------
    def _read_state(self) -> None:
        try:
            state = self.robot.state
        except self.errors as err:  # the connection is gone: a fault the operator must see
            self._connection_error = f"libfranka connection lost: {err}"
            return
        pose = state.O_T_EE
        position = np.asarray(pose.translation, dtype=float)
        x, y, z, w = np.asarray(pose.quaternion, dtype=float)  # franky: xyzw
        rotation = quat_to_mat(np.array([w, x, y, z]))
        stamp = self.ros_time()
        self.update_measured(position, rotation, stamp)
        wrench = np.asarray(state.O_F_ext_hat_K, dtype=float)
        self.update_wrench(wrench[:3], wrench[3:])
        self.pub_wrench.publish(M.to_wrench(wrench[:3], wrench[3:], stamp, self.profile.controller_frame))
        self.pub_joints.publish(JointState(header=M.header(stamp), name=list(FR3_JOINT_NAMES),
                                           position=[float(q) for q in state.q],
                                           velocity=[float(v) for v in state.dq],
                                           effort=[float(t) for t in state.tau_J]))

    def robot_fault(self) -> str | None:
        if self._connection_error is not None:
            return self._connection_error
        try:
            state = self.robot.state
            mode = state.robot_mode
            in_control = self.robot.is_in_control
        except self.errors as err:
            self._connection_error = f"libfranka connection lost: {err}"
            return self._connection_error
        if self._motion is not None and in_control:
            self._was_in_control = True
        lost = self._was_in_control and not in_control
        stopped = {self._franky.RobotMode.Reflex: "reflex", self._franky.RobotMode.UserStopped: "user stop"}
        if mode in stopped or lost:
            errors = str(state.last_motion_errors) if str(state.last_motion_errors) != "[]" else str(state.current_errors)
            return f"{stopped.get(mode, 'control lost')} ({mode.name}): {errors}"
        return None

    def recover_robot(self) -> str | None:
        if self._connection_error is not None:
            return f"{self._connection_error}: restart the bridge"
        try:
            self.robot.join_motion(timeout=0.5)  # collect the aborted motion's exception
        except self.errors as err:
            self.get_logger().info(f"the aborted motion ended with: {err}")
        try:
            recovered = self.robot.recover_from_errors()
            if not recovered:  # franky judges from the state packet already in flight: look again
                time.sleep(0.1)
                recovered = not self.robot.has_errors and self.robot.state.robot_mode != self._franky.RobotMode.Reflex
        except self.errors as err:
            return f"automatic error recovery failed: {err}"
        if not recovered:
            return "the robot's automatic error recovery failed: check the robot (Desk), then try again"
        self._motion = None  # a new tracking motion starts from where the arm is, on the next command
        self._was_in_control = False
        self._read_state()
        return None

    # -- to libfranka ------------------------------------------------------------------------------
    def _send(self) -> None:
        self._read_state()
        super()._send()

    def command_controller(self, position, rotation, holding: bool, stamp: float) -> None:
        if "robot" in self.faults or self._connection_error is not None:
            return  # the robot stopped itself: nothing is streamed until the operator recovers it
        franky = self._franky
        w, x, y, z = mat_to_quat(rotation)
        target = franky.Affine(np.asarray(position, dtype=float), np.array([x, y, z, w]))
        if self._motion is None:
            self._motion = self._start_motion()
        self._motion.set_reference(franky.CartesianReference(target=target))

    def _start_motion(self):
        franky, o = self._franky, self.options
        kwargs = dict(translational_stiffness=o.translational_stiffness, rotational_stiffness=o.rotational_stiffness,
                      translational_error_clip=np.full(3, o.translational_error_clip),
                      rotational_error_clip=np.full(3, o.rotational_error_clip))
        if o.force_constraints is not None:
            kwargs["force_constraints"] = list(o.force_constraints)
        if o.lower_joint_limits is not None:
            kwargs["lower_joint_limits"] = np.asarray(o.lower_joint_limits, dtype=float)
            kwargs["upper_joint_limits"] = np.asarray(o.upper_joint_limits, dtype=float)
        motion = franky.CartesianImpedanceTrackingMotion(**kwargs)
        # Seeded with where the arm is, so that starting the torque loop moves nothing.
        motion.set_reference(franky.CartesianReference(target=self.robot.current_pose.end_effector_pose))
        self.robot.move(motion, asynchronous=True)
        return motion

    def command_gripper(self, opening: float) -> None:
        if self.gripper is not None:
            self.gripper.request(opening)

    def status(self) -> dict:
        return {**super().status(), "franky": {"hostname": self.options.hostname,
                                                "in_control": self._motion is not None and "robot" not in self.faults}}

    def destroy_node(self) -> None:
        """Stop the torque loop gracefully (franky's torque stop: ramp down, damp to rest)."""
        try:
            if self._motion is not None and self.robot.is_in_control:
                self.robot.move(self._franky.TorqueStopMotion(), asynchronous=True)
                self.robot.join_motion(timeout=3.0)
        except self.errors as err:
            self.get_logger().warning(f"stopping the motion: {err}")
        if self.gripper is not None:
            self.gripper.close()
        super().destroy_node()


class _GripperWorker:
    """The Franka Hand off the executor's thread. libfranka's gripper runs one command at a time and a
    second one blocks until the first is done (a grasp takes ~0.5 s), so commands run on a worker that
    always takes the newest goal (goals in between are dropped, as a real hand could not follow them
    either), and the width is read on a thread of its own, so it keeps coming during a grasp.
    Closed (< 0.5): a grasp with `gripper_force` that succeeds on any object width; open: a move to
    `opening` of the hand's width."""

    def __init__(self, gripper, options: FrankyOptions, errors: tuple[type[BaseException], ...]):
        self.gripper, self.options, self.errors = gripper, options, errors
        self.max_width = float(gripper.max_width)
        self._goal: float | None = None
        self._done: float | None = None
        self._wake = threading.Condition()
        self._closed = False

    def start(self, publish_width, warn) -> None:
        self._publish, self._warn = publish_width, warn
        threading.Thread(target=self._command_loop, name="franky-gripper", daemon=True).start()
        threading.Thread(target=self._width_loop, name="franky-gripper-width", daemon=True).start()

    def request(self, opening: float) -> None:
        goal = 0.0 if opening < 0.5 else float(opening)
        with self._wake:
            if goal != self._goal:
                self._goal = goal
                self._wake.notify()

    def _command_loop(self) -> None:
        o = self.options
        while True:
            with self._wake:
                while not self._closed and self._goal == self._done:
                    self._wake.wait()
                if self._closed:
                    return
                goal = self._done = self._goal
            try:
                if goal == 0.0:
                    self.gripper.grasp(0.0, o.gripper_speed, o.gripper_force, epsilon_inner=0.005,
                                       epsilon_outer=self.max_width)
                else:
                    self.gripper.move(goal * self.max_width, o.gripper_speed)
            except self.errors as err:  # a failed grasp raises: logged, the next goal still runs
                self._warn(f"gripper command failed: {err}")

    def _width_loop(self) -> None:
        while not self._closed:
            try:
                self._publish(float(self.gripper.width))
            except self.errors as err:
                self._warn(f"gripper width: {err}")
            time.sleep(0.05)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
