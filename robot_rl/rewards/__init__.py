"""Reward labelers: camera images and a task sentence -> reward and success (see docs/ros2.md for the
ROS 2 reward node that runs one next to a robot)."""

from robot_rl.rewards.base import Label, Labeler

__all__ = ["Label", "Labeler"]
