"""Running one node in its own process: the same start-up and shut-down for every node here."""

from __future__ import annotations

import time
from collections.abc import Callable

import rclpy
from rclpy.node import Node

from hardware.ros import qos


def run_node(make_node: Callable[[rclpy.Context], Node], *, argv: list[str] | None = None,
             domain_id: int | None = None, duration_s: float | None = None,
             before_destroy: Callable[[Node], None] | None = None) -> None:
    """Create the node in a fresh context (our Fast DDS profile, `argv`'s --ros-args applied) and spin it
    until SIGINT/SIGTERM (rclpy turns both into a shutdown) or `duration_s`. `before_destroy` runs even
    after an error, e.g. to send a robot a last hold command (on a signal, rclpy's own shutdown hooks
    do not fire)."""
    qos.use_large_data_transport()
    context = rclpy.Context()
    rclpy.init(args=argv, context=context, domain_id=domain_id)
    node = None
    try:
        node = make_node(context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        end = None if duration_s is None else time.monotonic() + duration_s
        try:
            while context.ok() and (end is None or time.monotonic() < end):
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
            pass
    finally:
        if node is not None:
            if before_destroy is not None:
                before_destroy(node)
            node.destroy_node()
        context.try_shutdown()


class BackgroundNode:
    """A node spun by a daemon thread in its own context, for code whose main loop is not ROS's (a gym
    env, a device reader): callbacks run on that thread, so guard what they share with a lock."""

    def __init__(self, name: str, *, namespace: str = "", domain_id: int | None = None):
        import threading

        qos.use_large_data_transport()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, namespace=namespace, context=self.context)
        self._executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}-ros", daemon=True)

    def add(self, node: Node) -> Node:
        """Spin another node of this context on the same thread (create it with `context=self.context`)."""
        self._executor.add_node(node)
        return node

    def start(self) -> BackgroundNode:
        """Call once the node's subscriptions exist."""
        self._thread.start()
        return self

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except (rclpy.executors.ExternalShutdownException, KeyboardInterrupt):
            pass

    @property
    def domain_id(self) -> int:
        return self.context.get_domain_id()

    def close(self) -> None:
        if self.context.ok():
            self._executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
            self.context.try_shutdown()
            if self._thread.is_alive():
                self._thread.join(timeout=2.0)
