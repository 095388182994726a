"""reward_node: camera images + a task sentence -> `reward` and `success` on a robot's namespace, from any
`robot_rl.rewards.Labeler`. On a real robot this is what ends episodes; RobotEnv reads the topics just as it
reads a simulator's.

The labeler runs on a worker thread, so a slow model never blocks the ROS 2 graph: the newest set of
frames (one per camera, stamps within `sync_tolerance_s`) waits in a one-slot mailbox, a newer set replaces
it (counted in `status` as skipped), and each label is published as soon as it is ready. A labeler that
raises or returns None gives no label (counted and logged), never a crash.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, String

from hardware.ros import messages as M
from hardware.ros import qos, topics
from robot_rl.rewards import Labeler


class RewardNode(Node):
    def __init__(self, labeler: Labeler, task: str, cameras: tuple[str, ...], *, namespace: str = "robot",
                 sync_tolerance_s: float = 0.05, context=None):
        super().__init__("reward", namespace=namespace, context=context)
        if not cameras:
            raise ValueError("reward_node: name at least one camera")
        self.labeler, self.task, self.cameras = labeler, task, tuple(cameras)
        self.sync_tolerance_s = sync_tolerance_s
        self.stats = {"labelled": 0, "skipped": 0, "no_label": 0, "rejected_frames": 0, "latency_ms_last": None}
        self._frames: dict[str, tuple[np.ndarray, float]] = {}
        self._mailbox: tuple[dict[str, np.ndarray], float] | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self.pub_reward = self.create_publisher(Float32, topics.REWARD, qos.EVENT)
        self.pub_success = self.create_publisher(Bool, topics.SUCCESS, qos.EVENT)
        self.pub_status = self.create_publisher(String, "reward_status", qos.EVENT)
        for camera in self.cameras:
            self.create_subscription(Image, topics.camera_image(camera),
                                     lambda msg, camera=camera: self._on_image(camera, msg), qos.SENSOR)
        self._worker = threading.Thread(target=self._work, name="reward-labeler", daemon=True)
        self._worker.start()

    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            rgb = M.from_image(msg)
        except M.MessageError as err:
            self.stats["rejected_frames"] += 1
            self.get_logger().warning(f"dropped a frame of {camera}: {err}", throttle_duration_sec=1.0)
            return
        self._frames[camera] = (rgb, M.from_stamp(msg.header.stamp))
        if len(self._frames) < len(self.cameras):
            return
        stamps = [stamp for _, stamp in self._frames.values()]
        if max(stamps) - min(stamps) > self.sync_tolerance_s:
            return  # not one instant yet: wait for the lagging camera's next frame
        with self._cond:
            self.stats["skipped"] += int(self._mailbox is not None)
            self._mailbox = ({c: image for c, (image, _) in self._frames.items()}, max(stamps))
            self._cond.notify()
        self._frames = {}

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._mailbox is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                images, stamp = self._mailbox
                self._mailbox = None
            started = time.monotonic()
            try:
                label = self.labeler.label(images, self.task)
            except Exception as err:  # noqa: BLE001 - a labeler failing must not stop the robot's rewards
                self.get_logger().warning(f"labeler {self.labeler.name} failed: {err}", throttle_duration_sec=1.0)
                label = None
            if label is None:
                self.stats["no_label"] += 1
                continue
            self.stats["labelled"] += 1
            self.stats["latency_ms_last"] = 1e3 * (time.time() - stamp)
            self.pub_reward.publish(Float32(data=float(label.reward)))
            self.pub_success.publish(Bool(data=bool(label.success)))
            self.pub_status.publish(String(data=json.dumps({"labeler": self.labeler.name, **self.stats,
                                                            "labelling_ms": 1e3 * (time.monotonic() - started)})))

    def destroy_node(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._worker.join(timeout=5.0)
        super().destroy_node()
