"""Quality of service, one profile per kind of data:

- SENSOR (camera images, joint states, poses): best effort, keep last 1. A late frame is worth less
  than the next one, and a reliable stream would queue stale frames behind a slow reader.
- COMMAND (target pose / twist, gripper): reliable, keep last 1: the newest command must arrive and
  nothing older is worth sending.
- EVENT (e-stop, teleop events, reward/success, status): reliable, keep last 10: every one counts.
- LOCKSTEP_SENSOR: reliable keep last 1, for a simulator that steps only when commanded (a lost frame
  there would stall the loop).

Large raw images between processes need Fast DDS's shared memory transport with a segment big enough
for a frame; `use_large_data_transport()` selects it (before rclpy.init) unless the user set a profile.
"""

from __future__ import annotations

import os

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                    durability=DurabilityPolicy.VOLATILE)
LOCKSTEP_SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
EVENT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.VOLATILE)


def use_large_data_transport() -> None:
    """Fast DDS: shared memory (and TCP) for large samples, so that raw 640x480 frames are not lost in
    UDP fragments. Respects a profile the user configured; must run before rclpy.init()."""
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
