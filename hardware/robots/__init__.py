"""Real-robot bridges: robot-side ROS 2 nodes that map our topic contract (hardware/ros/topics.py) onto
a controller's own topics, with the command guard, safety filter, watchdog and e-stop in between; and
the YAML robot profiles that describe an arm (workspace, limits, topics, cameras)."""

from hardware.robots.profile import RobotProfile, load_profile

__all__ = ["RobotProfile", "load_profile"]
