"""Universal Robots arm through Universal_Robots_ROS2_Driver and MoveIt Servo: our filtered targets become
Servo twists; the driver's safety mode and dashboard are watched and used (docs/ros2.md, profile ur5e)."""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import TwistStamped
from std_srvs.srv import Trigger

from controllers.rotations import rotation_error
from hardware.robots.bridge import RobotBridge
from hardware.robots.profile import RobotProfile
from hardware.ros import driver_msgs, qos
from hardware.ros import messages as M


class URBridge(RobotBridge):
    """Universal_Robots_ROS2_Driver + MoveIt Servo. Optional driver topics in the profile:
    `servo_command_type_srv` (the bridge switches Servo to twist commands itself and is not ready until it
    has), `safety_mode_in` (ur_dashboard_msgs/SafetyMode: a protective or emergency stop latches a hold
    and ends the episode), `unlock_protective_stop_srv` / `play_srv` (the dashboard's Trigger services:
    the operator's `recover` unlocks the protective stop and restarts the External Control program)."""

    REQUIRED_TOPICS = ("ee_pose_in", "twist_out")
    GAIN = 4.0  # 1/s: twist = GAIN * pose error, then capped
    STOPPED = {3: "protective stop", 5: "safeguard stop", 6: "system emergency stop", 7: "robot emergency stop",
               8: "safety violation", 9: "safety fault", 12: "automatic mode safeguard stop",
               13: "three-position enabling stop"}

    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__(profile, context=context)
        t = profile.topics
        self.pub_twist_out = self.create_publisher(TwistStamped, t["twist_out"], qos.COMMAND)
        self.safety_mode: int | None = None
        self._servo_switched = "servo_command_type_srv" not in t  # else: switched by the operator (docs)
        self._servo_pending = None
        if "servo_command_type_srv" in t:
            driver_msgs.load("moveit_msgs")
            from moveit_msgs.srv import ServoCommandType

            self._servo_request = ServoCommandType.Request(command_type=ServoCommandType.Request.TWIST)
            self._servo_client = self.create_client(ServoCommandType, t["servo_command_type_srv"])
            self.create_timer(0.2, self._switch_servo)
        # On the reset host's thread, so the safety mode keeps arriving while `recover` waits for it.
        host = self._reset_host.node
        if "safety_mode_in" in t:
            driver_msgs.load("ur_dashboard_msgs")
            from ur_dashboard_msgs.msg import SafetyMode

            host.create_subscription(SafetyMode, t["safety_mode_in"],
                                     lambda msg: setattr(self, "safety_mode", int(msg.mode)), qos.LATCHED)
        self._dashboard = {k: host.create_client(Trigger, t[k]) for k in ("unlock_protective_stop_srv", "play_srv")
                           if k in t}

    def _switch_servo(self) -> None:
        if self._servo_switched or self._servo_pending is not None or not self._servo_client.service_is_ready():
            return
        self._servo_pending = self._servo_client.call_async(self._servo_request)
        self._servo_pending.add_done_callback(self._on_servo_switched)

    def _on_servo_switched(self, future) -> None:
        self._servo_pending = None
        self._servo_switched = bool(future.result() is not None and future.result().success)
        if not self._servo_switched:
            self.get_logger().warning("MoveIt Servo refused to switch to twist commands", throttle_duration_sec=2.0)

    def not_ready(self) -> str | None:
        if self.pub_twist_out.get_subscription_count() == 0:
            return (f"nothing subscribes to {self.profile.topics['twist_out']}: is MoveIt Servo running? Switch it "
                    "to twist commands once it is: ros2 service call /servo_node/switch_command_type "
                    "moveit_msgs/srv/ServoCommandType '{command_type: 1}'")
        if not self._servo_switched:
            return f"MoveIt Servo is not switched to twist commands yet ({self.profile.topics['servo_command_type_srv']})"
        return None

    def robot_fault(self) -> str | None:
        mode = self.safety_mode
        return f"{self.STOPPED[mode]} (UR safety mode {mode})" if mode in self.STOPPED else None

    def recover_robot(self) -> str | None:
        if not self._dashboard:
            return super().recover_robot()
        for key, client in self._dashboard.items():  # unlock the protective stop, then play the program
            name = self.profile.topics[key]
            if not client.wait_for_service(timeout_sec=2.0):
                return f"no {name} service: is the dashboard client running?"
            future = client.call_async(Trigger.Request())
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(10.0) or not future.result().success:
                answer = future.result().message if future.done() and future.result() else "no answer"
                return f"{name} failed: {answer}"
        deadline = time.monotonic() + 5.0  # the driver reports the new safety mode on its own
        while self.robot_fault() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return None

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
