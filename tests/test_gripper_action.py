"""The gripper adapter against an action server of control_msgs/action/GripperCommand, the exact type
franka_gripper's `gripper_action` serves (built from its field-for-field definition by
scripts/build_ros_interfaces.sh). The server plays the driver: it moves toward the goal, sends feedback of
the full width as franka_gripper does, and preempts on a new goal."""

from __future__ import annotations

import threading
import time

import pytest
from std_msgs.msg import Float64

from hardware.robots.profile import profile_from_dict
from hardware.ros import driver_msgs, qos
from tests.ros_helpers import ChildProcess, Probe, fresh_domain_id

FRANKA_GRIPPER = {
    "name": "gripper_test", "bridge": "franka",
    "topics": {"target_pose_out": "/eq", "ee_pose_in": "/pose", "gripper_command_out": "/robot/gripper_opening",
               "gripper_width_in": "/robot/gripper_width_measured"},
    # franka_gripper: goal position per finger (m), feedback the full width (m)
    "gripper_action": {"action": "/franka_gripper/gripper_action", "open_position": 0.04, "closed_position": 0.0,
                       "max_effort": 40.0, "max_width": 0.08, "feedback_open": 0.08, "feedback_closed": 0.0},
}


def _run_adapter(profile: dict, domain_id: int) -> None:
    from hardware.robots.gripper_action import main

    main(profile_from_dict(profile), domain_id=domain_id)


class FakeFrankaGripperServer:
    """An action server of the driver's type: fingers move 0.1 m/s towards the goal, feedback on the way."""

    def __init__(self, node):
        from rclpy.action import ActionServer, CancelResponse, GoalResponse

        driver_msgs.load("control_msgs")
        from control_msgs.action import GripperCommand

        self.type, self.width, self.goals = GripperCommand, 0.08, []
        self._lock = threading.Lock()
        self.server = ActionServer(node, GripperCommand, "/franka_gripper/gripper_action", self._execute,
                                   goal_callback=lambda _: GoalResponse.ACCEPT,
                                   cancel_callback=lambda _: CancelResponse.ACCEPT)

    def _execute(self, handle):
        command = handle.request.command
        self.goals.append((command.position, command.max_effort))
        target = 2.0 * command.position  # per finger -> width
        while abs(self.width - target) > 1e-4:
            if handle.is_cancel_requested:
                handle.canceled()
                return self.type.Result(position=self.width)
            self.width += max(-0.005, min(0.005, target - self.width))
            handle.publish_feedback(self.type.Feedback(position=self.width, effort=0.0))
            time.sleep(0.05)
        handle.succeed()
        return self.type.Result(position=self.width, effort=command.max_effort, reached_goal=True)


def test_gripper_adapter_sends_gripper_command_goals_and_publishes_the_width():
    from rclpy.executors import MultiThreadedExecutor

    from hardware.robots.gripper_action import GripperActionConfig
    from hardware.ros.runtime import BackgroundNode

    domain = fresh_domain_id()
    driver = BackgroundNode("franka_gripper", domain_id=domain)
    driver._executor = MultiThreadedExecutor(context=driver.context)  # goals run while feedback flows
    driver._executor.add_node(driver.node)
    gripper = FakeFrankaGripperServer(driver.node)
    driver.start()
    probe = Probe(domain)
    try:
        with ChildProcess(_run_adapter, FRANKA_GRIPPER, domain):
            probe.listen(Float64, "/robot/gripper_width_measured", qos.SENSOR)
            opening = probe.publisher(Float64, "/robot/gripper_opening", qos.COMMAND)
            deadline = time.monotonic() + 20
            while not gripper.goals and time.monotonic() < deadline:  # discovery, then the first goal
                opening.publish(Float64(data=0.0))
                time.sleep(0.2)
            assert gripper.goals and gripper.goals[0] == (0.0, 40.0)  # closed, with the profile's force
            width = lambda: probe.latest.get("/robot/gripper_width_measured")  # noqa: E731
            probe.wait_for(lambda: width() is not None and width().data < 0.005, timeout=10, what="closed")
            for _ in range(5):  # jitter of the same command sends no new goal
                opening.publish(Float64(data=0.01))
                time.sleep(0.05)
            assert len(gripper.goals) == 1
            opening.publish(Float64(data=1.0))
            probe.wait_for(lambda: width().data > 0.075, timeout=10, what="open")
            assert gripper.goals[-1] == (0.04, 40.0)  # 4 cm per finger: 8 cm wide
    finally:
        probe.close()
        driver.close()
    config = GripperActionConfig(**FRANKA_GRIPPER["gripper_action"])
    assert config.width(0.04) == pytest.approx(0.04) and config.goal_position(0.5) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="unknown key"):
        GripperActionConfig.from_profile(profile_from_dict({**FRANKA_GRIPPER, "gripper_action": {"actoin": "/x"}}))


def test_shipped_profiles_gripper_action_blocks_are_valid():
    from hardware.robots import load_profile
    from hardware.robots.gripper_action import GripperActionConfig

    franka = GripperActionConfig.from_profile(load_profile("franka_fr3"))
    assert franka.goal_position(1.0) == 0.04 and franka.width(0.08) == 0.08
    robotiq = GripperActionConfig.from_profile(load_profile("ur5e"))
    assert robotiq.goal_position(0.0) == pytest.approx(0.7929) and robotiq.width(0.0) == pytest.approx(0.085)
