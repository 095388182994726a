"""The UR bridge against the UR driver's and MoveIt Servo's own interface types (moveit_msgs'
ServoCommandType, ur_dashboard_msgs' SafetyMode, the dashboard's Trigger services; the first two built
field for field by scripts/build_ros_interfaces.sh). No UR controller simulator exists, so a node in this
process serves those interfaces as the driver documents them; the bridge runs in its own process."""

from __future__ import annotations

import json
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from std_msgs.msg import String
from std_srvs.srv import Trigger

from hardware.ros import driver_msgs, qos
from hardware.ros import messages as M
from hardware.ros.runtime import BackgroundNode
from tests.ros_helpers import BridgeProcess, fresh_domain_id

UR = {
    "name": "ur_driver_test", "bridge": "ur", "home_position": [0.45, 0.0, 0.25], "bridge_hz": 50.0,
    "topics": {"twist_out": "/servo_node/delta_twist_cmds", "ee_pose_in": "/tcp_pose_broadcaster/pose",
               "servo_command_type_srv": "/servo_node/switch_command_type",
               "safety_mode_in": "/io_and_status_controller/safety_mode",
               "unlock_protective_stop_srv": "/dashboard_client/unlock_protective_stop",
               "play_srv": "/dashboard_client/play"},
}


class UrDriver:
    """What the bridge meets on a UR cell: Servo's twist input and command-type switch, the driver's latched
    safety mode and TCP pose, the dashboard's unlock / play."""

    def __init__(self, domain: int):
        driver_msgs.load("moveit_msgs")
        driver_msgs.load("ur_dashboard_msgs")
        from moveit_msgs.srv import ServoCommandType
        from ur_dashboard_msgs.msg import SafetyMode

        self.ros = BackgroundNode("ur_driver", domain_id=domain)
        node = self.ros.node
        self.SafetyMode, self.switches, self.dashboard, self.twists = SafetyMode, [], [], 0
        node.create_service(ServoCommandType, "/servo_node/switch_command_type", self._switch)
        node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", self._twist, qos.COMMAND)
        self.pub_mode = node.create_publisher(SafetyMode, "/io_and_status_controller/safety_mode", qos.LATCHED)
        self.pub_mode.publish(SafetyMode(mode=SafetyMode.NORMAL))
        pose = node.create_publisher(PoseStamped, "/tcp_pose_broadcaster/pose", qos.SENSOR)
        node.create_timer(0.02, lambda: pose.publish(M.to_pose(np.array([0.45, 0.0, 0.25]),
                                                               np.diag([1.0, -1.0, -1.0]), time.time())))
        node.create_service(Trigger, "/dashboard_client/unlock_protective_stop", self._unlock)
        node.create_service(Trigger, "/dashboard_client/play", self._play)
        self.status: dict = {}
        node.create_subscription(String, "/robot/status", lambda m: setattr(self, "status", json.loads(m.data)),
                                 qos.EVENT)
        self.ros.start()

    def _switch(self, request, response):
        self.switches.append(request.command_type)
        response.success = True
        return response

    def _twist(self, msg):
        self.twists += 1

    def _unlock(self, request, response):
        self.dashboard.append("unlock_protective_stop")
        self.pub_mode.publish(self.SafetyMode(mode=self.SafetyMode.NORMAL))
        response.success, response.message = True, "Protective stop releasing"
        return response

    def _play(self, request, response):
        self.dashboard.append("play")
        response.success, response.message = True, "Starting program"
        return response

    def wait(self, predicate, what: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; status {self.status}")


def test_ur_bridge_switches_servo_watches_the_safety_mode_and_recovers_through_the_dashboard():
    domain = fresh_domain_id()
    driver = UrDriver(domain)
    try:
        with BridgeProcess(domain, UR):
            driver.wait(lambda: driver.status.get("ready"), "the bridge to be ready")
            assert driver.switches == [1]  # TWIST, once
            driver.wait(lambda: driver.twists > 10, "twists to Servo")
            driver.pub_mode.publish(driver.SafetyMode(mode=driver.SafetyMode.PROTECTIVE_STOP))
            driver.wait(lambda: "robot" in driver.status.get("faults", {}), "the protective stop to be latched")
            assert "protective stop" in driver.status["faults"]["robot"]
            reset = driver.ros.node.create_client(Trigger, "/robot/reset")
            recover = driver.ros.node.create_client(Trigger, "/robot/recover")
            answer = _call(reset)
            assert not answer.success and "recover" in answer.message  # an episode reset does not clear it
            assert driver.dashboard == []
            answer = _call(recover)  # the operator confirms
            assert answer.success and answer.message == "recovered", answer.message
            assert driver.dashboard == ["unlock_protective_stop", "play"]
            driver.wait(lambda: not driver.status.get("faults"), "the hold to be released")
    finally:
        driver.ros.close()


def _call(client, timeout: float = 20.0):
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.done(), "no answer"
    return future.result()
