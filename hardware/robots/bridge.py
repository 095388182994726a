"""Robot bridges: the robot side of a real arm, between our topic contract and the arm's controller.

In (our namespace): target_pose / target_twist / gripper_command / estop, and the reset / clear_estop
services. Every command passes the CommandGuard (malformed, foreign-frame or stale commands are dropped
with a logged reason), then the SafetyFilter (workspace box, step and rate limits, target lead); at
`bridge_hz` the filter's output goes to the controller, which is where the watchdog acts: no fresh
command for `command_timeout_s` -> the measured pose is held; an e-stop latches the hold until
`clear_estop`. Nothing is sent before the arm's pose has been measured.
Out (our namespace): ee_pose, ee_twist, ee_wrench, joint_states, gripper_width, status, republished
from the controller's topics named in the robot profile.

- FrankaBridge (franka_ros2 + a Cartesian impedance controller with an equilibrium-pose topic, as in
  SERL): sends the filtered target as geometry_msgs/PoseStamped on `topics.target_pose_out`.
- URBridge (Universal_Robots_ROS2_Driver + MoveIt Servo): sends a geometry_msgs/TwistStamped on
  `topics.twist_out`, proportional to the pose error and capped by the profile's speed limits; zero
  while holding (Servo itself stops 0.1 s after the last twist, and ros2_control's forward controllers
  would hold the last command forever, so the hold is explicit).
Gripper: the opening (0..1) goes to `topics.gripper_command_out` as std_msgs/Float64 for the gripper's
driver to act on; the width comes from `gripper_joint_states_in` (sum of finger joints) or `gripper_width_in`.

    robot-rl bridge franka_fr3            (or a profile YAML path)
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import Trigger

from controllers.rotations import rotation_error
from controllers.safety import SafetyFilter
from hardware.robots.profile import RobotProfile
from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.guard import CommandChecks, CommandGuard
from hardware.ros.runtime import BackgroundNode, run_node

HOME_TOLERANCE_M = 0.01
HOME_TIMEOUT_S = 30.0


class RobotBridge(Node):
    REQUIRED_TOPICS: tuple[str, ...] = ("ee_pose_in",)

    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__(f"{profile.bridge}_bridge", namespace=profile.namespace, context=context)
        missing = [k for k in self.REQUIRED_TOPICS if k not in profile.topics]
        if missing:
            raise ValueError(f"robot profile {profile.name!r}: topics {missing} are required by the {profile.bridge} bridge")
        self.profile = profile
        self.filter = SafetyFilter(profile.safety)
        self.guard = CommandGuard(CommandChecks(frame_id=profile.controller_frame),
                                  warn=lambda text: self.get_logger().warning(text, throttle_duration_sec=1.0))
        self.reference = np.asarray(profile.safety.reference_rotation, float).reshape(3, 3)
        self.measured: tuple[np.ndarray, np.ndarray] | None = None
        self.sent = 0
        self._hold = None
        self._homing: tuple[threading.Event, float] | None = None
        self._home_reached = False
        self._last_pose: tuple[np.ndarray, float] | None = None
        t = profile.topics
        pub, sub = self.create_publisher, self.create_subscription
        self.pub_pose = pub(PoseStamped, topics.EE_POSE, qos.SENSOR)
        self.pub_twist = pub(TwistStamped, topics.EE_TWIST, qos.SENSOR)
        self.pub_wrench = pub(WrenchStamped, topics.EE_WRENCH, qos.SENSOR)
        self.pub_joints = pub(JointState, topics.JOINT_STATES, qos.SENSOR)
        self.pub_width = pub(Float64, topics.GRIPPER_WIDTH, qos.SENSOR)
        self.pub_status = pub(String, topics.STATUS, qos.EVENT)
        sub(PoseStamped, t["ee_pose_in"], self._on_measured_pose, qos.SENSOR)
        if "ee_twist_in" in t:
            sub(TwistStamped, t["ee_twist_in"], self.pub_twist.publish, qos.SENSOR)
        if "ee_wrench_in" in t:
            sub(WrenchStamped, t["ee_wrench_in"], self.pub_wrench.publish, qos.SENSOR)
        if "joint_states_in" in t and t["joint_states_in"] != topics.join(profile.namespace, topics.JOINT_STATES):
            sub(JointState, t["joint_states_in"], self.pub_joints.publish, qos.SENSOR)
        if "gripper_joint_states_in" in t:
            sub(JointState, t["gripper_joint_states_in"],
                lambda m: self.pub_width.publish(Float64(data=float(np.sum(m.position)))), qos.SENSOR)
        elif "gripper_width_in" in t:
            sub(Float64, t["gripper_width_in"], self.pub_width.publish, qos.SENSOR)
        self.pub_gripper = pub(Float64, t["gripper_command_out"], qos.COMMAND) if "gripper_command_out" in t else None
        sub(PoseStamped, topics.TARGET_POSE, self._on_target_pose, qos.COMMAND)
        sub(TwistStamped, topics.TARGET_TWIST, self._on_target_twist, qos.COMMAND)
        sub(Float64, topics.GRIPPER_COMMAND, self._on_gripper, qos.COMMAND)
        sub(Bool, topics.ESTOP, self._on_estop, qos.EVENT)
        # `reset` blocks until the arm is home while this node's send timer moves it there, so it is
        # served by a node of its own, spun by its own thread. (rclpy's MultiThreadedExecutor stalled this
        # node's callbacks for up to 1.5 s at a time here; an async callback starved the timer.)
        self._reset_host = BackgroundNode(f"{profile.bridge}_bridge_reset", namespace=profile.namespace,
                                          domain_id=self.context.get_domain_id())
        self._reset_host.node.create_service(Trigger, topics.RESET, self._on_reset)
        self._reset_host.start()
        self.create_service(Trigger, topics.CLEAR_ESTOP, self._on_clear_estop)
        self.create_timer(1.0 / profile.bridge_hz, self._send)
        self.create_timer(0.1, self._publish_status)

    # -- the controller side (subclasses) ----------------------------------------------------------
    def command_controller(self, position, rotation, holding: bool, stamp: float) -> None:
        raise NotImplementedError

    # -- measured state --------------------------------------------------------------------------
    def _on_measured_pose(self, msg: PoseStamped) -> None:
        try:
            position, rotation = M.from_pose(msg)
        except M.MessageError as err:
            self.get_logger().warning(f"ignored the controller's pose: {err}", throttle_duration_sec=1.0)
            return
        first = self.measured is None
        self.measured = (position, rotation)
        if first:  # the filter starts from where the arm is
            self.filter.reset(position, rotation, now=time.monotonic())
        self.pub_pose.publish(msg)
        if "ee_twist_in" not in self.profile.topics:  # finite difference, for controllers without a twist topic
            stamp = M.from_stamp(msg.header.stamp)
            if self._last_pose is not None and stamp > self._last_pose[1]:
                velocity = (position - self._last_pose[0]) / (stamp - self._last_pose[1])
                self.pub_twist.publish(M.to_twist(velocity, np.zeros(3), stamp, msg.header.frame_id))
            self._last_pose = (position, stamp)

    # -- our commands ----------------------------------------------------------------------------
    def _on_target_pose(self, msg: PoseStamped) -> None:
        pose = self.guard.pose(msg, time.time())
        if pose is not None and self.measured is not None and self._homing is None:
            self.filter.submit(*pose, now=time.monotonic(), measured_position=self.measured[0])

    def _on_target_twist(self, msg: TwistStamped) -> None:
        self.guard.twist(msg, time.time())

    def _on_gripper(self, msg: Float64) -> None:
        opening = self.guard.gripper(msg)
        if opening is not None and self.pub_gripper is not None and not self.filter.estopped:
            self.pub_gripper.publish(Float64(data=opening))

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.filter.estopped:
            position, rotation = self.measured if self.measured is not None else (np.zeros(3), np.eye(3))
            self.filter.engage_estop(position, rotation)
            self.get_logger().warning("E-STOP engaged: holding the pose until clear_estop is called")

    def _on_clear_estop(self, request, response):
        if self.measured is None:
            response.success, response.message = False, "no measured pose yet"
            return response
        was = self.filter.estopped
        self.filter.clear_estop(*self.measured, now=time.monotonic())
        response.success = True
        response.message = "e-stop cleared" if was else "e-stop was not engaged"
        return response

    def _on_reset(self, request, response):
        """Move to the profile's home position at the filter's speed; answer once there (or after
        HOME_TIMEOUT_S, unsuccessfully; a bridge just started first waits for the arm's pose)."""
        if self.filter.estopped:
            response.success, response.message = False, "e-stop engaged: clear it first"
            return response
        done = threading.Event()
        self._home_reached = False
        self._homing = (done, time.monotonic())
        done.wait(HOME_TIMEOUT_S + 1.0)
        reached = self._home_reached
        response.success = reached
        response.message = json.dumps({"home": list(self.profile.home_position), "reached": reached,
                                       "measured": self.measured is not None})
        return response

    # -- to the controller -------------------------------------------------------------------------
    def _send(self) -> None:
        if self.measured is None:  # never command an arm whose pose is unknown
            if self._homing is not None and time.monotonic() - self._homing[1] > HOME_TIMEOUT_S:
                self._homing[0].set()
                self._homing = None
            return
        now, wall = time.monotonic(), time.time()
        position, rotation = self.measured
        if self._homing is not None:
            done, started = self._homing
            home = np.asarray(self.profile.home_position)
            if np.linalg.norm(home - position) < HOME_TOLERANCE_M or now - started > HOME_TIMEOUT_S or self.filter.estopped:
                self._homing = None
                self._home_reached = bool(np.linalg.norm(home - position) < HOME_TOLERANCE_M)
                done.set()
            else:
                self.filter.submit(home, self.reference, now=now, measured_position=position)
        else:
            target = self.guard.twist_target(*self.filter.output(now, position, rotation)[:2],
                                             1.0 / self.profile.bridge_hz, wall, self.profile.safety.command_timeout_s)
            if target is not None:
                self.filter.submit(*target, now=now, measured_position=position)
        target_pos, target_rot, hold = self.filter.output(now, position, rotation)
        self._hold = hold
        self.command_controller(target_pos, target_rot, hold.stale_hold or hold.estop, wall)
        self.sent += 1

    def destroy_node(self) -> None:
        self._reset_host.close()
        super().destroy_node()

    def _publish_status(self) -> None:
        hold = self._hold
        self.pub_status.publish(String(data=json.dumps({
            "bridge": self.profile.bridge, "measured": self.measured is not None, "sent": self.sent,
            "estop": self.filter.estopped, "watchdog_hold": bool(hold is not None and hold.stale_hold),
            "homing": self._homing is not None, "commands": self.guard.status()})))


class FrankaBridge(RobotBridge):
    REQUIRED_TOPICS = ("ee_pose_in", "target_pose_out")

    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__(profile, context=context)
        self.pub_equilibrium = self.create_publisher(PoseStamped, profile.topics["target_pose_out"], qos.COMMAND)

    def command_controller(self, position, rotation, holding: bool, stamp: float) -> None:
        # The impedance controller tracks the equilibrium pose; a hold is the held pose itself.
        self.pub_equilibrium.publish(M.to_pose(position, rotation, stamp, self.profile.controller_frame))


class URBridge(RobotBridge):
    REQUIRED_TOPICS = ("ee_pose_in", "twist_out")
    GAIN = 4.0  # 1/s: twist = GAIN * pose error, then capped

    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__(profile, context=context)
        self.pub_twist_out = self.create_publisher(TwistStamped, profile.topics["twist_out"], qos.COMMAND)

    def command_controller(self, position, rotation, holding: bool, stamp: float) -> None:
        frame = self.profile.controller_frame
        if holding:
            self.pub_twist_out.publish(M.to_twist(np.zeros(3), np.zeros(3), stamp, frame))
            return
        measured_pos, measured_rot = self.measured
        linear = self.GAIN * (position - measured_pos)
        angular = self.GAIN * rotation_error(rotation, measured_rot)
        limits = self.profile.safety
        for v, cap in ((linear, limits.max_linear_speed), (angular, limits.max_angular_speed)):
            norm = float(np.linalg.norm(v))
            if norm > cap:
                v *= cap / norm
        self.pub_twist_out.publish(M.to_twist(linear, angular, stamp, frame))


BRIDGES = {"franka": FrankaBridge, "ur": URBridge}


def _hold_where_it_is(node: RobotBridge) -> None:
    if node.measured is not None:  # the last word to the controller: hold where the arm is
        node.command_controller(*node.measured, True, time.time())


def main(profile: RobotProfile, *, domain_id: int | None = None, argv: list[str] | None = None) -> None:
    if profile.bridge not in BRIDGES:
        raise ValueError(f"robot profile {profile.name!r} has bridge {profile.bridge!r}; `robot-rl bridge` runs "
                         f"{sorted(BRIDGES)} (a 'sim' profile runs `robot-rl sim-robot`)")
    run_node(lambda context: BRIDGES[profile.bridge](profile, context=context), argv=argv, domain_id=domain_id,
             before_destroy=_hold_where_it_is)
