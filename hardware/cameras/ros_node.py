"""camera_node: publish one camera as ROS 2 images on a robot's namespace, with the same topic names
as sim_robot_node's cameras (`cameras/<name>/image_raw`, `.../compressed` while someone subscribes,
`.../camera_info`), after crop and resize. Best-effort, keep-last-1 QoS: a late frame is dropped.

    robot-rl camera --name front --source opencv --device 0 --crop 80 0 480 480 --resize 128 128
"""

from __future__ import annotations

import time

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hardware.cameras.sources import CameraConfig, open_camera
from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.runtime import run_node


class CameraNode(Node):
    def __init__(self, config: CameraConfig, *, namespace: str = "robot", fovy_deg: float = 0.0,
                 jpeg_quality: int = 90, context=None):
        super().__init__(f"camera_{config.name}", namespace=namespace, context=context)
        self.config = config
        self.source = open_camera(config)
        self.fovy_deg = fovy_deg
        self.jpeg_quality = jpeg_quality
        self.published = 0
        self.missed = 0  # timer ticks with no new frame from the source
        self.pub_image = self.create_publisher(Image, topics.camera_image(config.name), qos.SENSOR)
        self.pub_jpeg = self.create_publisher(CompressedImage, topics.camera_compressed(config.name), qos.SENSOR)
        self.pub_info = self.create_publisher(CameraInfo, topics.camera_info(config.name), qos.SENSOR)
        self.create_timer(1.0 / config.fps, self._tick)

    def _tick(self) -> None:
        rgb = self.source.read()
        if rgb is None:
            self.missed += 1
            return
        stamp = time.time()
        self.pub_image.publish(M.to_image(rgb, stamp, self.config.name))
        if self.pub_jpeg.get_subscription_count() > 0:
            self.pub_jpeg.publish(M.to_compressed(rgb, stamp, self.config.name, self.jpeg_quality))
        height, width = rgb.shape[:2]
        if self.fovy_deg > 0:
            info = M.camera_info(width, height, self.fovy_deg, stamp, self.config.name)
        else:  # intrinsics unknown: size only (calibrate, then give fovy or a full CameraInfo)
            info = CameraInfo(header=M.header(stamp, self.config.name), width=width, height=height)
        self.pub_info.publish(info)
        self.published += 1

    def destroy_node(self) -> None:
        self.source.close()
        super().destroy_node()


def main(config: CameraConfig, *, namespace: str = "robot", domain_id: int | None = None,
         argv: list[str] | None = None, fovy_deg: float = 0.0, duration_s: float | None = None) -> int:
    """Publish until SIGINT/SIGTERM (or `duration_s`); returns the number of frames published."""
    nodes = []

    def make(context):
        nodes.append(CameraNode(config, namespace=namespace, fovy_deg=fovy_deg, context=context))
        return nodes[0]

    run_node(make, argv=argv, domain_id=domain_id, duration_s=duration_s)
    return nodes[0].published if nodes else 0
