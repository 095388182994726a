"""Robot-side checks on every incoming command, before it reaches the safety filter or a controller.

A command is dropped, with the reason counted and logged, when it is malformed (non-finite values, a
quaternion that is not a rotation, a gripper opening outside [0, 1]), in another frame than the robot's
base frame (there is no TF lookup on this path on purpose: a wrong frame is a configuration error), or
stale (stamped longer ago than `max_age_s` on the robot's clock, or in the future: the clocks disagree).
What passes still goes through `controllers.SafetyFilter` (workspace, step and rate limits, watchdog,
e-stop), owned by the sim or the hardware bridge.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controllers.rotations import exp_map
from hardware.ros.messages import MessageError, from_pose, from_stamp, from_twist


@dataclass(frozen=True)
class CommandChecks:
    frame_id: str = "base"
    # Other names of the same frame: our topic contract says "base" whatever the robot's driver calls it
    # (franka_ros2: fr3_link0).
    also_accepted: tuple[str, ...] = ()
    max_age_s: float = 0.5  # on arrival, on the robot's clock
    max_future_s: float = 0.05  # stamped this far ahead of the robot's clock: accepted (clock jitter)

    def __post_init__(self) -> None:
        for name in ("max_age_s", "max_future_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"CommandChecks.{name} must be a finite number >= 0, got {value!r}")


class CommandGuard:
    """Validates commands; integrates a twist command into a target pose. `warn(text)` logs a rejection."""

    def __init__(self, checks: CommandChecks, warn: Callable[[str], None]):
        self.checks = checks
        self.warn = warn
        self.rejected: collections.Counter[str] = collections.Counter()
        self.accepted = 0
        self.last_rejection = ""
        self.arrival_ages: collections.deque[float] = collections.deque(maxlen=1000)  # s, accepted commands
        self._twist: tuple[np.ndarray, np.ndarray, float] | None = None

    def pose(self, msg, now: float) -> tuple[np.ndarray, np.ndarray] | None:
        if not self._header_ok("target_pose", msg.header, now):
            return None
        try:
            pose = from_pose(msg)
        except MessageError as err:
            self._reject("target_pose", str(err))
            return None
        self._twist = None  # a pose command replaces a twist
        self.accepted += 1
        self.arrival_ages.append(now - from_stamp(msg.header.stamp))
        return pose

    def twist(self, msg, now: float) -> bool:
        """Store a twist command; `twist_target` turns it into poses while it is fresh."""
        if not self._header_ok("target_twist", msg.header, now):
            return False
        try:
            linear, angular = from_twist(msg)
        except MessageError as err:
            self._reject("target_twist", str(err))
            return False
        self._twist = (linear, angular, now)
        self.accepted += 1
        return True

    def twist_target(self, position, rotation, dt: float, now: float, timeout_s: float):
        """The pose `dt` seconds along the current twist from (position, rotation), or None when there is
        no twist or it is older than `timeout_s` (the safety filter's watchdog then holds the arm)."""
        if self._twist is None or now - self._twist[2] > timeout_s:
            return None
        linear, angular, _ = self._twist
        return np.asarray(position) + linear * dt, exp_map(angular * dt) @ np.asarray(rotation)

    def gripper(self, msg) -> float | None:
        value = float(msg.data)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            self._reject("gripper_command", f"opening must be in [0, 1], got {value!r}")
            return None
        self.accepted += 1
        return value

    def status(self) -> dict:
        status = {"accepted": self.accepted, "rejected": dict(self.rejected), "last_rejection": self.last_rejection}
        if self.arrival_ages:  # command latency: sender's stamp to arrival here (clocks must agree)
            ms = 1e3 * np.asarray(self.arrival_ages)
            status["latency_ms_p50"] = float(np.percentile(ms, 50))
            status["latency_ms_p99"] = float(np.percentile(ms, 99))
        return status

    def _header_ok(self, what: str, header, now: float) -> bool:
        if header.frame_id not in (self.checks.frame_id, "", *self.checks.also_accepted):
            self._reject(what, f"frame {header.frame_id!r} is not the robot base frame {self.checks.frame_id!r}")
            return False
        age = now - from_stamp(header.stamp)
        if age > self.checks.max_age_s:
            self._reject(what, f"stale: stamped {age:.3f} s ago (limit {self.checks.max_age_s} s)")
            return False
        if age < -self.checks.max_future_s:
            self._reject(what, f"stamped {-age:.3f} s in the future: the sender's clock disagrees with the robot's")
            return False
        return True

    def _reject(self, what: str, reason: str) -> None:
        self.rejected[what] += 1
        self.last_rejection = f"{what}: {reason}"
        self.warn(f"rejected {self.last_rejection}")
