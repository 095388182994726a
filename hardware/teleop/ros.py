"""Teleop over ROS 2: a node that publishes a device's commands on a robot's namespace, and a device
that reads them back elsewhere (the actor's machine, for instance), so the device can sit next to the
operator while the policy runs next to the robot.

Topics (hardware/ros/topics.py): `teleop/action` (Float32MultiArray, the normalised action, published
at `rate_hz` while connected), `teleop/active` (Bool, the human is driving), `teleop/event` (String,
one message per operator event: takeover | success | failure | reset | pause | estop; reliable); an
estop event also goes straight to the robot's `estop` topic.

    robot-rl teleop-node --device spacemouse [--namespace robot]      # next to the operator
    robot-rl actor --teleop ros ...                                   # next to the robot
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Bool, Float32MultiArray, String

from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.runtime import BackgroundNode, run_node
from hardware.teleop.base import OperatorEvent, TeleopCommand, TeleopConfig, TeleopDevice

STALE_S = 0.3  # a remote command older than this is inactive (the node or the link is gone)


class TeleopNode(Node):
    def __init__(self, device: TeleopDevice, *, namespace: str = "robot", rate_hz: float = 50.0, context=None):
        super().__init__("teleop", namespace=namespace, context=context)
        self.device = device
        self.pub_action = self.create_publisher(Float32MultiArray, topics.TELEOP_ACTION, qos.COMMAND)
        self.pub_active = self.create_publisher(Bool, topics.TELEOP_ACTIVE, qos.COMMAND)
        self.pub_event = self.create_publisher(String, topics.TELEOP_EVENT, qos.EVENT)
        self.pub_estop = self.create_publisher(Bool, topics.ESTOP, qos.EVENT)
        self.pub_deadman = self.create_publisher(Bool, topics.DEADMAN, qos.COMMAND)
        self.create_timer(1.0 / rate_hz, self._tick)

    def _tick(self) -> None:
        command = self.device.poll()
        for event in command.events:
            self.pub_event.publish(String(data=event.value))
            if event is OperatorEvent.ESTOP:  # straight to the robot, not through whoever reads the events
                self.pub_estop.publish(Bool(data=True))
        self.pub_deadman.publish(Bool(data=bool(command.deadman and command.connected)))
        if not command.connected:
            return  # silence: the reader turns inactive after STALE_S
        self.pub_action.publish(M.to_vector(command.action, "teleop_action"))
        self.pub_active.publish(Bool(data=bool(command.active)))


class RosTeleopDevice:
    """Reads a TeleopNode's topics; polls like a local TeleopDevice (for robot_rl's TeleopHuman)."""

    name = "ros teleop"

    def __init__(self, config: TeleopConfig, *, namespace: str = "robot", domain_id: int | None = None):
        self.config = config
        self._ros = BackgroundNode("teleop_reader", namespace=namespace, domain_id=domain_id)
        self.node = self._ros.node
        self._lock = threading.Lock()
        self._action = np.zeros(config.dim, np.float32)
        self._active = False
        self._received = -np.inf
        self._events: list[OperatorEvent] = []
        self._takeover = False
        self.rejected = ""
        self.node.create_subscription(Float32MultiArray, topics.TELEOP_ACTION, self._on_action, qos.COMMAND)
        self.node.create_subscription(Bool, topics.TELEOP_ACTIVE, self._on_active, qos.COMMAND)
        self.node.create_subscription(String, topics.TELEOP_EVENT, self._on_event, qos.EVENT)
        self._ros.start()

    def _on_action(self, msg) -> None:
        try:
            action = np.clip(M.from_vector(msg, self.config.dim, "teleop action"), -1.0, 1.0)
        except M.MessageError as err:
            self.rejected = str(err)
            self.node.get_logger().warning(f"dropped a teleop action: {err}", throttle_duration_sec=1.0)
            return
        with self._lock:
            self._action, self._received = action, time.monotonic()

    def _on_active(self, msg) -> None:
        with self._lock:
            self._active = bool(msg.data)

    def _on_event(self, msg) -> None:
        try:
            event = OperatorEvent(msg.data)
        except ValueError:
            self.node.get_logger().warning(f"unknown teleop event {msg.data!r}", throttle_duration_sec=1.0)
            return
        with self._lock:
            self._events.append(event)

    @property
    def connected(self) -> bool:
        return time.monotonic() - self._received < STALE_S

    def toggle_takeover(self) -> bool:
        """The console's TAKEOVER: latch the remote device as the driver (it holds still when untouched)."""
        with self._lock:
            self._takeover = not self._takeover and self.connected
            return self._takeover

    def poll(self) -> TeleopCommand:
        with self._lock:
            events, self._events = self._events, []
            connected = time.monotonic() - self._received < STALE_S
            if OperatorEvent.TAKEOVER in events:
                self._takeover = not self._takeover
            if not connected:
                self._takeover = False
            return TeleopCommand(action=self._action.copy(), active=connected and (self._active or self._takeover),
                                 events=events, timestamp=self._received, takeover=self._takeover,
                                 connected=connected)

    def close(self) -> None:
        self._ros.close()


def run_teleop_node(device: TeleopDevice, *, namespace: str = "robot", rate_hz: float = 50.0,
                    domain_id: int | None = None) -> None:
    try:
        run_node(lambda context: TeleopNode(device, namespace=namespace, rate_hz=rate_hz, context=context),
                 domain_id=domain_id)
    finally:
        device.close()
