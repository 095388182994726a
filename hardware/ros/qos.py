"""Quality of service, one profile per kind of data:

- SENSOR (camera images, joint states, poses): best effort, keep last 1. A late frame is worth less
  than the next one, and a reliable stream would queue stale frames behind a slow reader.
- COMMAND (target pose / twist, gripper): reliable, keep last 1: the newest command must arrive and
  nothing older is worth sending.
- EVENT (e-stop, teleop events, reward/success, status): reliable, keep last 10: every one counts.
- LOCKSTEP_SENSOR: reliable keep last 1, for a simulator that steps only when commanded (a lost frame
  there would stall the loop).

Large raw images between processes: Fast DDS's default shared-memory segment (512 KB) is smaller than
one 640x480 frame, so those go over UDP fragments and best-effort readers lose 28-46% of them.
`use_large_data_transport()` (called before rclpy.init by every node here) points Fast DDS at a profile
with a 16 MB shared-memory segment plus UDPv4, the same transports a default participant has, so our
nodes still discover and talk to any other ROS 2 process (ros2 CLI, franka_ros2, the UR driver). Fast
DDS's LARGE_DATA builtin mode would also keep the frames but did not interoperate with default
participants here. A profile set by the user (FASTDDS_DEFAULT_PROFILES_FILE) is left alone.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                    durability=DurabilityPolicy.VOLATILE)
LOCKSTEP_SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
EVENT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.VOLATILE)
# A driver's latched state (published on change, kept for late joiners: the UR driver's safety mode).
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


FASTDDS_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>robot_rl_shm</transport_id>
        <type>SHM</type>
        <segment_size>16777216</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>robot_rl_udp</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="robot_rl_participant" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>robot_rl_shm</transport_id>
          <transport_id>robot_rl_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def use_large_data_transport() -> None:
    """Select the 16 MB shared-memory profile for Fast DDS (before rclpy.init), unless the user set one."""
    if "FASTDDS_DEFAULT_PROFILES_FILE" in os.environ or "FASTDDS_BUILTIN_TRANSPORTS" in os.environ:
        return
    path = Path(tempfile.gettempdir()) / f"robot_rl_fastdds_{os.getuid()}.xml"
    if not path.exists() or path.read_text() != FASTDDS_PROFILE:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(FASTDDS_PROFILE)
        os.replace(tmp, path)
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
