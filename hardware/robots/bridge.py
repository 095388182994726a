"""Robot bridges: the robot side of a real arm, between our topic contract and the arm's controller.

In (our namespace): target_pose / target_twist / gripper_command / estop / deadman, and the reset /
clear_estop / recover services. Every command passes the CommandGuard (malformed, foreign-frame or stale
commands are dropped with a logged reason), then the SafetyFilter (controllers/safety.py); at `bridge_hz`
the filter's output goes to the controller. Nothing is sent before the arm's pose has been measured inside
the workspace box. Holds where the arm is: the watchdog (no fresh command for `command_timeout_s`), and
latched ones that end the episode: the operator's e-stop (until `clear_estop`), the wrench limit (until
the next reset), the robot's own safety stop (until the operator's `recover`), a released dead-man.
Out (our namespace): ee_pose, ee_twist, ee_wrench, joint_states, gripper_width, status.

- FrankaBridge (here; franka_ros2 + a controller that tracks an equilibrium pose): sends the filtered
  target as geometry_msgs/PoseStamped on `topics.target_pose_out`.
- URBridge (ur_bridge.py; the UR driver + MoveIt Servo twists) and FrankyBridge (franky_bridge.py;
  libfranka directly, no ROS controller): one module per kind, named in bridges.py.
Gripper: the opening (0..1) goes to `topics.gripper_command_out` as std_msgs/Float64 (`robot-rl gripper`
turns it into a GripperCommand action); the width comes from `gripper_joint_states_in` (sum of finger
joints) or `gripper_width_in`.

    robot-rl bridge franka_fr3_franky            (or a profile YAML path)
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

from controllers.safety import SafetyFilter
from hardware.robots.profile import RobotProfile
from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.guard import CommandChecks, CommandGuard
from hardware.ros.runtime import BackgroundNode

HOME_TOLERANCE_M = 0.01
HOME_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 5.0  # ROS discovery of the controller's subscription takes ~2.5 s here


class RobotBridge(Node):
    REQUIRED_TOPICS: tuple[str, ...] = ("ee_pose_in",)

    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__(f"{profile.bridge}_bridge", namespace=profile.namespace, context=context)
        missing = [k for k in self.REQUIRED_TOPICS if k not in profile.topics]
        if missing:
            raise ValueError(f"robot profile {profile.name!r}: topics {missing} are required by the {profile.bridge} bridge")
        self.profile = profile
        self.filter = SafetyFilter(profile.safety)
        self.guard = CommandGuard(CommandChecks(frame_id=profile.controller_frame, also_accepted=("base",)),
                                  warn=lambda text: self.get_logger().warning(text, throttle_duration_sec=1.0))
        self.reference = np.asarray(profile.safety.reference_rotation, float).reshape(3, 3)
        self.measured: tuple[np.ndarray, np.ndarray] | None = None
        # Why the arm is held, latched until the operator (or, for the wrench, the next reset) releases it:
        # "estop" (operator), "wrench" (limit exceeded), "robot" (the robot's own reflex / protective stop).
        self.faults: dict[str, str] = {}
        self.outside_workspace = False  # the arm was outside the box at start-up: nothing is commanded
        self.sent = 0
        self._hold = None
        self._homing: tuple[threading.Event, float] | None = None
        self._home_reached = False
        self._last_pose: tuple[np.ndarray, float] | None = None
        self._wrench: tuple[np.ndarray, np.ndarray] | None = None
        t = profile.topics
        pub, sub = self.create_publisher, self.create_subscription
        self.pub_pose = pub(PoseStamped, topics.EE_POSE, qos.SENSOR)
        self.pub_twist = pub(TwistStamped, topics.EE_TWIST, qos.SENSOR)
        self.pub_wrench = pub(WrenchStamped, topics.EE_WRENCH, qos.SENSOR)
        self.pub_joints = pub(JointState, topics.JOINT_STATES, qos.SENSOR)
        self.pub_width = pub(Float64, topics.GRIPPER_WIDTH, qos.SENSOR)
        self.pub_status = pub(String, topics.STATUS, qos.EVENT)
        if "ee_pose_in" in t:
            sub(PoseStamped, t["ee_pose_in"], self._on_measured_pose, qos.SENSOR)
        if "ee_twist_in" in t:
            sub(TwistStamped, t["ee_twist_in"], self.pub_twist.publish, qos.SENSOR)
        if "ee_wrench_in" in t:
            sub(WrenchStamped, t["ee_wrench_in"], self._on_wrench, qos.SENSOR)
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
        self._deadman_at: float | None = None  # last `deadman: true` (monotonic)
        if profile.deadman_timeout_s is not None:
            sub(Bool, topics.DEADMAN, self._on_deadman, qos.COMMAND)
        # `reset` blocks until the arm is home while this node's send timer moves it there, so it is
        # served by a node of its own, spun by its own thread. (rclpy's MultiThreadedExecutor stalled this
        # node's callbacks for up to 1.5 s at a time here; an async callback starved the timer.)
        self._reset_host = BackgroundNode(f"{profile.bridge}_bridge_reset", namespace=profile.namespace,
                                          domain_id=self.context.get_domain_id())
        self._reset_host.node.create_service(Trigger, topics.RESET, self._on_reset)
        self._reset_host.start()
        self.create_service(Trigger, topics.CLEAR_ESTOP, self._on_clear_estop)
        self.create_service(Trigger, topics.RECOVER, self._on_recover)
        self.create_timer(1.0 / profile.bridge_hz, self._send)
        self.create_timer(0.1, self._publish_status)

    # -- the controller side (subclasses) ----------------------------------------------------------
    def command_controller(self, position, rotation, holding: bool, stamp: float) -> None:
        raise NotImplementedError

    def not_ready(self) -> str | None:
        """Why the controller side cannot take commands yet (None: it can). Checked before homing."""
        return None

    def robot_fault(self) -> str | None:
        """The robot's own safety state, when it stopped itself (a reflex, a user or protective stop)."""
        return None

    def recover_robot(self) -> str | None:
        """Ask the robot to recover from its fault; None when it did, else why not."""
        return "this bridge cannot recover the robot: recover it on the robot's own interface, then call recover"

    def ros_time(self) -> float:
        """Seconds on this node's ROS clock (simulated time under `use_sim_time`): message stamps."""
        return self.get_clock().now().nanoseconds * 1e-9

    # -- measured state --------------------------------------------------------------------------
    def _on_measured_pose(self, msg: PoseStamped) -> None:
        try:
            position, rotation = M.from_pose(msg)
        except M.MessageError as err:
            self.get_logger().warning(f"ignored the controller's pose: {err}", throttle_duration_sec=1.0)
            return
        self.update_measured(position, rotation, M.from_stamp(msg.header.stamp), msg)

    def update_measured(self, position, rotation, stamp: float, msg: PoseStamped | None = None) -> None:
        """A new measured pose (base frame). The first one inside the workspace box starts the filter."""
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(rotation))):
            self.get_logger().warning("ignored a non-finite measured pose", throttle_duration_sec=1.0)
            return
        self.measured = (position, rotation)
        if not self.filter.started:  # nothing is commanded before a measured pose, inside the box
            if self.profile.safety.contains(position):
                self.filter.reset(position, rotation, now=time.monotonic())
                if self.outside_workspace:
                    self.get_logger().info("the arm is inside the workspace box now: taking commands")
                self.outside_workspace = False
            elif not self.outside_workspace:
                self.outside_workspace = True
                self.get_logger().error(
                    f"the arm is at {np.round(position, 3).tolist()}, outside the workspace box "
                    f"{list(self.profile.safety.workspace_low)}..{list(self.profile.safety.workspace_high)}: "
                    "nothing is commanded until the operator jogs it inside (or widen the profile's box)")
        self.pub_pose.publish(msg if msg is not None else M.to_pose(position, rotation, stamp, self.profile.controller_frame))
        if "ee_twist_in" not in self.profile.topics:  # finite difference, for controllers without a twist topic
            if self._last_pose is not None and stamp > self._last_pose[1]:
                velocity = (position - self._last_pose[0]) / (stamp - self._last_pose[1])
                self.pub_twist.publish(M.to_twist(velocity, np.zeros(3), stamp, self.profile.controller_frame))
            self._last_pose = (position, stamp)

    def _on_wrench(self, msg: WrenchStamped) -> None:
        self.pub_wrench.publish(msg)
        f, t = msg.wrench.force, msg.wrench.torque
        self.update_wrench(np.array([f.x, f.y, f.z]), np.array([t.x, t.y, t.z]))

    def update_wrench(self, force, torque) -> None:
        self._wrench = (np.asarray(force, float), np.asarray(torque, float))
        reason = self.profile.safety.wrench_violation(force, torque)
        if reason is not None and "wrench" not in self.faults:
            self.latch("wrench", reason)

    # -- faults: hold where the arm is until released ------------------------------------------------
    def latch(self, kind: str, reason: str) -> None:
        self.faults[kind] = reason
        if self.measured is not None and self.filter.started:
            self.filter.engage_estop(*self.measured, now=time.monotonic())
        else:
            self.filter.engage_estop()  # before any measured pose: the first one becomes the hold
        self.get_logger().error(f"HOLDING ({kind}): {reason}")

    def release(self, kind: str) -> str:
        self.faults.pop(kind, None)
        if self.faults:
            return f"still holding: {self.faults}"
        if self.filter.estopped and self.measured is not None and self.filter.started:
            self.filter.clear_estop(*self.measured, now=time.monotonic())
        return ""

    # -- our commands ----------------------------------------------------------------------------
    def _on_target_pose(self, msg: PoseStamped) -> None:
        pose = self.guard.pose(msg, self.ros_time())
        if pose is not None and self.filter.started and self._homing is None:
            self.filter.submit(*pose, now=time.monotonic(), measured_position=self.measured[0])

    def _on_target_twist(self, msg: TwistStamped) -> None:
        self.guard.twist(msg, self.ros_time())

    def _on_gripper(self, msg: Float64) -> None:
        opening = self.guard.gripper(msg)
        if opening is not None and not self.faults:
            self.command_gripper(opening)

    def command_gripper(self, opening: float) -> None:
        if self.pub_gripper is not None:
            self.pub_gripper.publish(Float64(data=opening))

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and "estop" not in self.faults:
            self.latch("estop", "operator e-stop: clear_estop releases it")

    def _on_deadman(self, msg: Bool) -> None:
        self._deadman_at = time.monotonic() if msg.data else None

    def _check_deadman(self) -> None:
        """Hold-to-run: released (or silent for deadman_timeout_s), the arm holds; held again, it resumes."""
        timeout = self.profile.deadman_timeout_s
        if timeout is None:
            return
        held = self._deadman_at is not None and time.monotonic() - self._deadman_at <= timeout
        if not held and "deadman" not in self.faults:
            self.latch("deadman", "hold-to-run button released")
        elif held and "deadman" in self.faults:
            self.release("deadman")

    def _on_clear_estop(self, request, response):
        if self.measured is None:
            response.success, response.message = False, "no measured pose yet"
            return response
        was = "estop" in self.faults
        rest = self.release("estop")
        response.success = not rest
        response.message = rest or ("e-stop cleared" if was else "e-stop was not engaged")
        return response

    def _on_recover(self, request, response):
        """The operator confirms that the robot may resume after its own safety stop (reflex, user stop,
        protective stop): the robot is asked to recover, then the hold is released where the arm is."""
        if "robot" not in self.faults:
            response.success, response.message = True, "no robot fault to recover from"
            return response
        why = self.recover_robot()
        if why is None and self.robot_fault() is None:
            rest = self.release("robot")
            response.success, response.message = not rest, rest or "recovered"
        else:
            response.success, response.message = False, why or f"still faulted: {self.robot_fault()}"
        return response

    def _on_reset(self, request, response):
        """Move to the profile's home position at the filter's speed; answer once there (or after
        HOME_TIMEOUT_S, unsuccessfully; a bridge just started first waits for the arm's pose). A wrench
        hold is released here if the wrench is back under the limit; other holds need the operator."""
        if "wrench" in self.faults and self._wrench is not None \
                and self.profile.safety.wrench_violation(*self._wrench) is None:
            self.release("wrench")
        if self.faults:
            response.success = False
            response.message = f"holding: {self.faults}; clear_estop / recover first"
            return response
        deadline = time.monotonic() + READY_TIMEOUT_S  # a controller just started is still being discovered
        while (why := self.not_ready()) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if why is not None:
            response.success, response.message = False, f"not ready: {why}"
            return response
        done = threading.Event()
        self._home_reached = False
        self._homing = (done, time.monotonic())
        done.wait(HOME_TIMEOUT_S + 1.0)
        reached = self._home_reached
        response.success = reached
        response.message = json.dumps({"home": list(self.profile.home_position), "reached": reached,
                                       "measured": self.measured is not None,
                                       "outside_workspace": self.outside_workspace, "faults": self.faults})
        return response

    # -- to the controller -------------------------------------------------------------------------
    def _send(self) -> None:
        fault = self.robot_fault()
        if fault is not None and "robot" not in self.faults:
            self.latch("robot", fault)
        self._check_deadman()
        if not self.filter.started:  # never command an arm whose pose is unknown, or outside the box
            if self._homing is not None and time.monotonic() - self._homing[1] > HOME_TIMEOUT_S:
                self._homing[0].set()
                self._homing = None
            return
        now, stamp = time.monotonic(), self.ros_time()
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
                                             1.0 / self.profile.bridge_hz, stamp, self.profile.safety.command_timeout_s)
            if target is not None:
                self.filter.submit(*target, now=now, measured_position=position)
        target_pos, target_rot, hold = self.filter.output(now, position, rotation)
        self._hold = hold
        self.command_controller(target_pos, target_rot, hold.stale_hold or hold.estop, stamp)
        self.sent += 1

    def destroy_node(self) -> None:
        self._reset_host.close()
        super().destroy_node()

    def status(self) -> dict:
        hold = self._hold
        return {"bridge": self.profile.bridge, "measured": self.measured is not None, "sent": self.sent,
                "estop": "estop" in self.faults, "faults": dict(self.faults), "holding": self.filter.estopped,
                "outside_workspace": self.outside_workspace,
                "watchdog_hold": bool(hold is not None and hold.stale_hold),
                "homing": self._homing is not None, "ready": self.not_ready() is None,
                "commands": self.guard.status()}

    def _publish_status(self) -> None:
        self.pub_status.publish(String(data=json.dumps(self.status())))


class FrankaBridge(RobotBridge):
    REQUIRED_TOPICS = ("ee_pose_in", "target_pose_out")

    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__(profile, context=context)
        self.pub_equilibrium = self.create_publisher(PoseStamped, profile.topics["target_pose_out"], qos.COMMAND)

    def not_ready(self) -> str | None:
        if self.pub_equilibrium.get_subscription_count() == 0:
            return (f"nothing subscribes to {self.profile.topics['target_pose_out']}: is a controller that tracks "
                    "an equilibrium pose active? (docs/ros2.md: no released franka_ros2 controller does)")
        return None

    def command_controller(self, position, rotation, holding: bool, stamp: float) -> None:
        # The impedance controller tracks the equilibrium pose; a hold is the held pose itself.
        self.pub_equilibrium.publish(M.to_pose(position, rotation, stamp, self.profile.controller_frame))
