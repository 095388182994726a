"""Camera sources (real OpenCV decoding of a video file, the synthetic pattern), crop/resize, and the
camera node publishing raw, JPEG and camera info to another process over ROS 2."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hardware.cameras import CameraConfig, open_camera
from hardware.ros import messages as M
from hardware.ros import qos, topics
from tests.ros_helpers import CameraProcess, Probe, fresh_domain_id


def test_opencv_source_reads_a_video_file_and_crops_then_resizes(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for i in range(5):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :32] = (0, 0, 255)  # BGR red on the left half
        frame[0, 0] = i
        writer.write(frame)
    writer.release()
    camera = open_camera(CameraConfig(name="front", device=str(path), crop=(0, 0, 32, 48), resize=(16, 24)))
    try:
        rgb = camera.read()
        assert rgb.shape == (24, 16, 3)
        assert rgb[..., 0].mean() > 200 and rgb[..., 2].mean() < 40  # red, as RGB: the crop kept the left half
        frames = 1
        while camera.read() is not None:
            frames += 1
        assert frames == 5
    finally:
        camera.close()


def test_bad_camera_settings_are_clear():
    with pytest.raises(OSError, match="cannot open"):
        open_camera(CameraConfig(device="/nonexistent/video9"))
    with pytest.raises(ValueError, match="source"):
        CameraConfig(source="webcam")
    with pytest.raises(ValueError, match="crop"):
        CameraConfig(crop=(0, 0, -1, 10))
    camera = open_camera(CameraConfig(source="pattern", width=32, height=32, crop=(0, 0, 64, 64)))
    with pytest.raises(ValueError, match="exceeds"):
        camera.read()


def test_the_camera_node_publishes_raw_jpeg_and_camera_info_to_another_process():
    domain = fresh_domain_id()
    probe = Probe(domain)
    try:
        for kind, topic in ((Image, topics.camera_image("front")), (CompressedImage, topics.camera_compressed("front")),
                            (CameraInfo, topics.camera_info("front"))):
            probe.listen(kind, topic, qos.SENSOR)
        config = {"name": "front", "source": "pattern", "width": 320, "height": 240, "fps": 30.0,
                  "crop": (40, 0, 240, 240), "resize": (96, 96)}
        with CameraProcess(domain, config, seconds=8.0):
            probe.wait_for(lambda: all(probe.counts.get(t, 0) >= 5 for t in (
                topics.camera_image("front"), topics.camera_compressed("front"), topics.camera_info("front"))),
                timeout=20.0, what="raw, JPEG and camera info frames")
            raw = M.from_image(probe.latest[topics.camera_image("front")])
            jpeg = M.from_compressed(probe.latest[topics.camera_compressed("front")])
            info = probe.latest[topics.camera_info("front")]
            assert raw.shape == jpeg.shape == (96, 96, 3)
            assert (info.width, info.height) == (96, 96) and info.k[0] > 0
            assert time.time() - M.from_stamp(probe.latest[topics.camera_image("front")].header.stamp) < 1.0
    finally:
        probe.close()
