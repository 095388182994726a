"""Shared by the ROS 2 tests: a domain id per test, a sim_robot_node in its own process, a probe node
that publishes and listens in the test process, and a pick-cube policy that sees only observations."""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import time

import numpy as np

_counter = itertools.count()


def fresh_domain_id() -> int:
    """Distinct per test and (very likely) per concurrent test run on the machine."""
    return 1 + (os.getpid() * 13 + next(_counter)) % 200


def _run_sim_robot(parameters: dict, domain_id: int, namespace: str) -> None:
    from robot_rl.ros.sim_robot_node import main

    main(parameters=parameters, domain_id=domain_id, namespace=namespace)


class ChildProcess:
    """A spawned process for a test: SIGTERM on exit (rclpy shuts its node down), SIGKILL if it lingers."""

    def __init__(self, target, *args):
        self.process = mp.get_context("spawn").Process(target=target, args=args, daemon=True)

    def __enter__(self):
        self.process.start()
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class SimRobotProcess(ChildProcess):
    def __init__(self, domain_id: int, namespace: str = "robot", **parameters):
        super().__init__(_run_sim_robot, parameters, domain_id, namespace)


class Probe:
    """A node in the test process: publish commands, keep the newest message per topic."""

    def __init__(self, domain_id: int, namespace: str = "robot"):
        from hardware.ros.runtime import BackgroundNode

        self.ros = BackgroundNode("probe", namespace=namespace, domain_id=domain_id).start()
        self.node = self.ros.node
        self.latest: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def listen(self, msg_type, topic: str, qos):
        def keep(msg):
            self.latest[topic] = msg
            self.counts[topic] = self.counts.get(topic, 0) + 1
        self.node.create_subscription(msg_type, topic, keep, qos)

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def status(self) -> dict:
        msg = self.latest.get("status")
        return json.loads(msg.data) if msg is not None else {}

    def close(self):
        self.ros.close()


class ObsPickPolicy:
    """Pick-cube from the observation alone (proprio + object state), as a remote client sees it."""

    def __init__(self, scale: float = 0.03):
        self.scale = scale
        self.reset()

    def reset(self):
        self.phase, self.count = 0, 0

    def act(self, obs) -> np.ndarray:
        ee, cube = obs["proprio"][:3], obs["object"][:3]

        def move(goal):
            return np.clip(0.6 * (goal - ee) / self.scale, -1, 1)

        grip = 1.0
        if self.phase == 0:  # above the cube
            goal = cube + [0, 0, 0.06]
            translation = move(goal)
            if np.linalg.norm((goal - ee)[:2]) < 0.01 and abs(goal[2] - ee[2]) < 0.015:
                self.phase = 1
        elif self.phase == 1:  # down to it
            goal = cube + [0, 0, -0.004]
            translation = move(goal)
            if abs(goal[2] - ee[2]) < 0.008:
                self.phase = 2
        elif self.phase == 2:  # close
            translation, grip = np.zeros(3), -1.0
            self.count += 1
            if self.count >= 3:
                self.phase = 3
        else:  # lift
            translation, grip = np.array([0, 0, 1.0]), -1.0
        return np.r_[translation, grip].astype(np.float32)


def _run_bridge(profile: dict, domain_id: int) -> None:
    from hardware.robots.bridges import main
    from hardware.robots.profile import profile_from_dict

    main(profile_from_dict(profile), domain_id=domain_id)


class BridgeProcess(ChildProcess):
    def __init__(self, domain_id: int, profile: dict):
        super().__init__(_run_bridge, profile, domain_id)


def _run_remapped_sim(parameters: dict, domain_id: int, namespace: str, remaps: dict) -> None:
    from robot_rl.ros.sim_robot_node import main

    argv = ["sim", "--ros-args"]
    for source, target in remaps.items():
        argv += ["-r", f"{source}:={target}"]
    main(argv, parameters=parameters, domain_id=domain_id, namespace=namespace)


class RemappedSimProcess(ChildProcess):
    """A sim_robot_node whose topics are renamed to a real controller's: the stand-in a bridge drives."""

    def __init__(self, domain_id: int, remaps: dict, namespace: str = "arm_sim", **parameters):
        super().__init__(_run_remapped_sim, parameters, domain_id, namespace, remaps)


def _run_teleop_node(script: list, domain_id: int, seconds: float) -> None:
    import rclpy

    from hardware.teleop import ScriptedDevice, TeleopConfig
    from hardware.teleop.ros import TeleopNode

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = TeleopNode(ScriptedDevice(script, TeleopConfig()), context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    context.try_shutdown()


class TeleopNodeProcess(ChildProcess):
    def __init__(self, domain_id: int, script: list, seconds: float):
        super().__init__(_run_teleop_node, script, domain_id, seconds)


def _run_camera(config_values: dict, domain_id: int, seconds: float) -> None:
    from hardware.cameras import CameraConfig
    from hardware.cameras.ros_node import main

    main(CameraConfig(**config_values), domain_id=domain_id, duration_s=seconds, fovy_deg=60.0)


class CameraProcess(ChildProcess):
    def __init__(self, domain_id: int, config_values: dict, seconds: float):
        super().__init__(_run_camera, config_values, domain_id, seconds)
