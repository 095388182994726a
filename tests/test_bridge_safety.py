"""The bridge's own safety duties, in-process with real rclpy (nothing spun: callbacks are called as the
executor would): nothing commanded before a measured pose inside the box, an e-stop before the first
pose, the wrench limit, the robot's own safety stop and its operator-confirmed recovery."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from controllers.safety import EE_DOWN
from hardware.robots.bridge import FrankaBridge
from hardware.robots.profile import profile_from_dict
from tests.ros_helpers import fresh_domain_id

REF = np.array(EE_DOWN).reshape(3, 3)
PROFILE = {"name": "bridge_test", "bridge": "franka", "home_position": [0.45, 0.0, 0.25],
           "safety": {"workspace_low": [0.25, -0.35, 0.0], "workspace_high": [0.75, 0.35, 0.45],
                      "max_force": 30.0},
           "topics": {"target_pose_out": "/eq", "ee_pose_in": "/pose"}}


class Recorded(FrankaBridge):
    """The Franka bridge with its controller output recorded instead of published, and a robot whose
    safety state the test sets."""

    def __init__(self, profile, context):
        super().__init__(profile, context=context)
        self.commands: list[tuple[np.ndarray, np.ndarray, bool]] = []
        self.fault: str | None = None
        self.recovered = 0

    def command_controller(self, position, rotation, holding, stamp):
        self.commands.append((position.copy(), rotation.copy(), holding))

    def robot_fault(self):
        return self.fault

    def recover_robot(self):
        self.recovered += 1
        self.fault = None


@pytest.fixture
def bridge():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=fresh_domain_id())
    node = Recorded(profile_from_dict(PROFILE), context)
    try:
        yield node
    finally:
        node.destroy_node()
        context.try_shutdown()


def _trigger(callback):
    return callback(Trigger.Request(), Trigger.Response())


def test_nothing_is_commanded_before_a_measured_pose(bridge):
    for _ in range(5):
        bridge._send()
    assert bridge.commands == []


def test_estop_before_the_first_pose_holds_that_pose_not_the_base(bridge):
    bridge._on_estop(Bool(data=True))
    bridge._send()
    assert bridge.commands == []
    pose = np.array([0.5, 0.05, 0.2])
    bridge.update_measured(pose, REF, 0.0)
    bridge._send()
    position, rotation, holding = bridge.commands[-1]
    assert holding
    np.testing.assert_allclose(position, pose)  # was (0, 0, 0): the arm driven at its base
    np.testing.assert_allclose(rotation, REF)
    assert bridge.status()["estop"]
    assert _trigger(bridge._on_clear_estop).message == "e-stop cleared"


def test_an_arm_outside_the_box_at_startup_is_not_moved_until_jogged_in(bridge):
    above = np.array([0.5, 0.0, 0.65])  # 20 cm above the box
    bridge.update_measured(above, REF, 0.0)
    for _ in range(5):
        bridge._send()
    assert bridge.commands == [] and bridge.status()["outside_workspace"]
    inside = np.array([0.5, 0.0, 0.44])  # the operator jogged it in
    bridge.update_measured(inside, REF, 1.0)
    bridge._send()
    np.testing.assert_allclose(bridge.commands[-1][0], inside)
    assert not bridge.status()["outside_workspace"]


def test_the_wrench_limit_holds_where_the_arm_is_and_the_next_reset_releases_it(bridge):
    pose = np.array([0.5, 0.0, 0.2])
    bridge.update_measured(pose, REF, 0.0)
    bridge._send()
    bridge.update_wrench([0.0, 0.0, 45.0], [0.0, 0.0, 0.0])
    assert "wrench" in bridge.faults and "45.0 N" in bridge.faults["wrench"]
    bridge._send()
    assert bridge.commands[-1][2]  # holding
    np.testing.assert_allclose(bridge.commands[-1][0], pose)
    bridge.update_wrench([np.nan, 0.0, 0.0], [0.0, 0.0, 0.0])  # a broken sensor is no release either
    answer = _trigger(bridge._on_reset)
    assert not answer.success and "wrench" in answer.message
    bridge.update_wrench([0.0, 0.0, 5.0], [0.0, 0.0, 0.0])
    bridge.release("wrench")  # what reset does once the wrench is under the limit (it then goes home)
    assert not bridge.faults and not bridge.filter.estopped


def test_a_robot_safety_stop_holds_until_the_operator_confirms_recovery(bridge):
    pose = np.array([0.5, 0.0, 0.2])
    bridge.update_measured(pose, REF, 0.0)
    bridge._send()
    bridge.fault = "reflex: cartesian_reflex"
    bridge._send()
    assert bridge.status()["faults"] == {"robot": "reflex: cartesian_reflex"}
    assert bridge.commands[-1][2]
    answer = _trigger(bridge._on_reset)  # an episode reset does not recover it
    assert not answer.success and "recover" in answer.message
    assert bridge.recovered == 0
    answer = _trigger(bridge._on_recover)  # the operator confirms
    assert answer.success and answer.message == "recovered" and bridge.recovered == 1
    bridge._send()
    assert not bridge.commands[-1][2] and not bridge.faults


def test_hold_to_run_moves_only_while_the_deadman_is_held():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=fresh_domain_id())
    node = Recorded(profile_from_dict({**PROFILE, "deadman_timeout_s": 0.2}), context)
    try:
        pose = np.array([0.5, 0.0, 0.2])
        node.update_measured(pose, REF, 0.0)
        node._send()
        assert node.faults == {"deadman": "hold-to-run button released"} and node.commands[-1][2]
        node._on_deadman(Bool(data=True))
        node._send()
        assert not node.faults and not node.commands[-1][2]
        node._deadman_at -= 0.3  # silent for longer than the timeout: the device or its link is gone
        node._send()
        assert "deadman" in node.faults and node.commands[-1][2]
        np.testing.assert_allclose(node.commands[-1][0], pose)
    finally:
        node.destroy_node()
        context.try_shutdown()
    with pytest.raises(ValueError, match="deadman_timeout_s"):
        profile_from_dict({**PROFILE, "deadman_timeout_s": -1})


def test_a_ros_bridge_is_not_ready_without_a_controller_listening(bridge):
    # Nothing subscribes to the equilibrium pose topic here: reset says so instead of "homing" into nothing.
    bridge.update_measured(np.array([0.5, 0.0, 0.2]), REF, 0.0)
    answer = _trigger(bridge._on_reset)
    assert not answer.success and "nothing subscribes to /eq" in answer.message
    assert bridge.status()["ready"] is False
