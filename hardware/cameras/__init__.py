"""Cameras: frame sources (OpenCV devices, files and streams; RealSense when `pyrealsense2` is installed;
a synthetic test pattern), crop/resize, and a ROS 2 node that publishes them."""

from hardware.cameras.sources import CameraConfig, CameraSource, open_camera

__all__ = ["CameraConfig", "CameraSource", "open_camera"]
