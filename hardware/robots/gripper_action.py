"""A gripper behind a control_msgs `GripperCommand` action (franka_gripper's `gripper_action`; a Robotiq
2F on ros2_control's GripperActionController, humble): our opening topic in, action goals out, and the
measured width published for RobotEnv, which needs it at every step.

    # profile: topics: {gripper_command_out: /robot/gripper_opening, gripper_width_in: /robot/gripper_width_measured}
    #          gripper_action: {action: /franka_gripper/gripper_action, open_position: 0.04, ...}  (GripperActionConfig)
    robot-rl gripper franka_fr3

Goals map the opening linearly: position = closed_position + opening * (open_position - closed_position),
in the driver's units (franka_gripper: metres per finger; Robotiq: knuckle radians). A new goal replaces
the one in flight (it is cancelled). The width comes from the action's feedback and result, mapped the
same way from `feedback_open` / `feedback_closed` to 0..`max_width` metres, and is republished at 20 Hz.
The action type is built from source by scripts/build_ros_interfaces.sh (control_msgs has no wheel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rclpy.node import Node
from std_msgs.msg import Float64

from hardware.robots.profile import RobotProfile, build_section
from hardware.ros import driver_msgs, qos
from hardware.ros.runtime import run_node

MIN_CHANGE = 0.05  # of the opening: smaller changes send no new goal (a policy's jitter is no command)


@dataclass(frozen=True)
class GripperActionConfig:
    """The `gripper_action` block of a robot profile."""

    action: str  # the action server, e.g. /franka_gripper/gripper_action
    open_position: float  # goal position for fully open, in the driver's units
    closed_position: float
    max_effort: float  # N
    max_width: float = 0.08  # m, the width reported when fully open
    feedback_open: float | None = None  # feedback position when fully open (default: open_position)
    feedback_closed: float | None = None

    def __post_init__(self) -> None:
        if not self.action.startswith("/"):
            raise ValueError(f"gripper_action.action must be an absolute action name, got {self.action!r}")
        for name in ("open_position", "closed_position", "max_effort", "max_width"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"gripper_action.{name} must be a finite number")
        if self.open_position == self.closed_position or self.max_effort <= 0 or self.max_width <= 0:
            raise ValueError("gripper_action: open_position must differ from closed_position, and max_effort "
                             "and max_width must be > 0")

    @classmethod
    def from_profile(cls, profile: RobotProfile) -> GripperActionConfig:
        if not profile.gripper_action:
            raise ValueError(f"robot profile {profile.name!r} has no gripper_action block")
        return build_section(cls, profile.gripper_action, f"robot profile {profile.name!r}: gripper_action")

    def goal_position(self, opening: float) -> float:
        return self.closed_position + opening * (self.open_position - self.closed_position)

    def width(self, feedback_position: float) -> float:
        fb_open = self.open_position if self.feedback_open is None else self.feedback_open
        fb_closed = self.closed_position if self.feedback_closed is None else self.feedback_closed
        fraction = (feedback_position - fb_closed) / (fb_open - fb_closed)
        return float(min(max(fraction, 0.0), 1.0) * self.max_width)


class GripperActionAdapter(Node):
    def __init__(self, profile: RobotProfile, *, context=None):
        super().__init__("gripper_action", namespace=profile.namespace, context=context)
        from rclpy.action import ActionClient

        driver_msgs.load("control_msgs")
        from control_msgs.action import GripperCommand

        if "gripper_command_out" not in profile.topics:
            raise ValueError(f"robot profile {profile.name!r}: the gripper adapter needs topics.gripper_command_out")
        self.config = GripperActionConfig.from_profile(profile)
        self._action_type = GripperCommand
        self.client = ActionClient(self, GripperCommand, self.config.action)
        self.goal_opening: float | None = None
        self.width: float | None = None
        self.goals_sent = 0
        self._handle = None
        self.create_subscription(Float64, profile.topics["gripper_command_out"], self._on_opening, qos.COMMAND)
        # Where the bridge reads the width (unless it sums the gripper's finger joints instead).
        self.pub_width = None
        if "gripper_width_in" in profile.topics and "gripper_joint_states_in" not in profile.topics:
            self.pub_width = self.create_publisher(Float64, profile.topics["gripper_width_in"], qos.SENSOR)
            self.create_timer(0.05, self._publish_width)

    def _on_opening(self, msg: Float64) -> None:
        opening = float(msg.data)
        if not (math.isfinite(opening) and 0.0 <= opening <= 1.0):
            self.get_logger().warning(f"ignored gripper opening {opening!r}: must be in [0, 1]", throttle_duration_sec=1.0)
            return
        if self.goal_opening is not None and abs(opening - self.goal_opening) < MIN_CHANGE:
            return
        if not self.client.server_is_ready():
            self.get_logger().warning(f"no gripper action server at {self.config.action}", throttle_duration_sec=2.0)
            return
        if self._handle is not None:
            self._handle.cancel_goal_async()  # the newest command wins
        self.goal_opening = opening
        goal = self._action_type.Goal()
        goal.command.position = self.config.goal_position(opening)
        goal.command.max_effort = float(self.config.max_effort)
        future = self.client.send_goal_async(goal, feedback_callback=self._on_feedback)
        future.add_done_callback(self._on_goal_answer)
        self.goals_sent += 1

    def _on_goal_answer(self, future) -> None:
        handle = future.result()
        if handle is None or not handle.accepted:
            self.get_logger().warning("the gripper refused the goal")
            return
        self._handle = handle
        handle.get_result_async().add_done_callback(self._on_result)

    def _on_feedback(self, msg) -> None:
        self.width = self.config.width(msg.feedback.position)

    def _on_result(self, future) -> None:
        answer = future.result()
        if answer is not None:
            self.width = self.config.width(answer.result.position)

    def _publish_width(self) -> None:
        if self.width is not None and self.pub_width is not None:
            self.pub_width.publish(Float64(data=self.width))


def main(profile: RobotProfile, *, domain_id: int | None = None, argv: list[str] | None = None) -> None:
    run_node(lambda context: GripperActionAdapter(profile, context=context), argv=argv, domain_id=domain_id)
