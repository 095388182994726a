"""Safety filter: every end-effector target pose sent to a robot (or the simulator) passes here.

Limits, applied in this order to each submitted target:
1. non-finite (NaN/Inf) or malformed targets (wrong shape, rotation not a rotation matrix) are
   rejected, the previous target is kept;
2. step limit: at most `max_translation_per_command` / `max_rotation_per_command` from the previous
   target, and rate limit: at most `max_linear_speed` / `max_angular_speed` times the time since it;
3. lead limit: the target stays within `max_target_lead` of the measured position (when given), so a
   blocked arm does not wind its target up and then leap when released;
4. workspace box on position and a per-axis box on the orientation's deviation from a reference
   (last, so that every accepted target is inside the box).
Then, when the robot asks what to do now (`output`):
5. stale-command watchdog: no accepted command for `command_timeout_s` -> hold the measured pose;
6. e-stop: while engaged, hold the pose measured when it was engaged and refuse new targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controllers.rotations import exp_map, log_map, rotation_error

EE_DOWN = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)  # gripper pointing at the table


def _is_rotation(rot: np.ndarray, atol: float = 1e-4) -> bool:
    """Orthonormal with det +1 (checked on bounded entries first, so huge values cannot overflow).
    Anything else (e.g. -R) would make log_map return NaN and poison every later target."""
    return bool(
        np.all(np.abs(rot) <= 1.0 + atol)
        and np.allclose(rot @ rot.T, np.eye(3), atol=atol)
        and np.linalg.det(rot) > 0
    )


@dataclass(frozen=True)
class SafetyLimits:
    workspace_low: tuple[float, float, float] = (0.25, -0.35, 0.0)  # m, base frame
    workspace_high: tuple[float, float, float] = (0.75, 0.35, 0.45)
    reference_rotation: tuple[float, ...] = EE_DOWN  # 3x3, row-major
    max_orientation_deviation: tuple[float, float, float] = (0.6, 0.6, 1.6)  # rad about base x, y, z
    max_translation_per_command: float = 0.05  # m
    max_rotation_per_command: float = 0.3  # rad
    max_linear_speed: float = 0.6  # m/s
    max_angular_speed: float = 3.0  # rad/s
    max_target_lead: float = 0.06  # m between the target and the measured position
    command_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        low = np.asarray(self.workspace_low, dtype=float)
        high = np.asarray(self.workspace_high, dtype=float)
        if low.shape != (3,) or high.shape != (3,) or not np.all(np.isfinite(np.r_[low, high])):
            raise ValueError("SafetyLimits.workspace_low/high must be three finite numbers each")
        if np.any(low >= high):
            raise ValueError(
                f"SafetyLimits.workspace_low must be below workspace_high on every axis, "
                f"got low={self.workspace_low} high={self.workspace_high}"
            )
        ref = np.asarray(self.reference_rotation, dtype=float).reshape(-1)
        if (
            ref.shape != (9,)
            or not np.allclose(ref.reshape(3, 3) @ ref.reshape(3, 3).T, np.eye(3), atol=1e-6)
            or np.linalg.det(ref.reshape(3, 3)) < 0  # a reflection is orthonormal too
        ):
            raise ValueError("SafetyLimits.reference_rotation must be a 3x3 rotation matrix (9 numbers)")
        dev = np.asarray(self.max_orientation_deviation, dtype=float)
        if dev.shape != (3,) or not np.all((dev > 0) & (dev <= np.pi)):  # also rejects NaN
            raise ValueError("SafetyLimits.max_orientation_deviation must be three angles in (0, pi]")
        for name in (
            "max_translation_per_command",
            "max_rotation_per_command",
            "max_linear_speed",
            "max_angular_speed",
            "max_target_lead",
            "command_timeout_s",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"SafetyLimits.{name} must be a positive number, got {value}")

    def contains(self, position: np.ndarray) -> bool:
        return bool(np.all(position >= self.workspace_low) and np.all(position <= self.workspace_high))


@dataclass
class SafetyStatus:
    """What the filter did to the last command (all False: passed unchanged)."""

    rejected_nonfinite: bool = False
    step_limited: bool = False
    rate_limited: bool = False
    workspace_clipped: bool = False
    orientation_clipped: bool = False
    lead_limited: bool = False
    stale_hold: bool = False
    estop: bool = False

    @property
    def modified(self) -> bool:
        return any(vars(self).values())


@dataclass
class _Pose:
    position: np.ndarray
    rotation: np.ndarray = field(repr=False)


class SafetyFilter:
    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self._low = np.asarray(limits.workspace_low, dtype=float)
        self._high = np.asarray(limits.workspace_high, dtype=float)
        self._ref = np.asarray(limits.reference_rotation, dtype=float).reshape(3, 3)
        self._max_dev = np.asarray(limits.max_orientation_deviation, dtype=float)
        self._target: _Pose | None = None
        self._hold: _Pose | None = None
        self._last_command_time = 0.0
        self._last_submit_time: float | None = None
        self._estop = False

    # -- lifecycle -------------------------------------------------------------------------------
    def reset(self, position, rotation, now: float) -> None:
        """Start from the measured pose (clipped into the box). An engaged e-stop stays engaged."""
        self._target = self._clip_to_box(_Pose(np.array(position, float), np.array(rotation, float)))[0]
        if not self._estop:  # an engaged e-stop keeps holding the pose measured at engagement
            self._hold = None
        self._last_command_time = now
        self._last_submit_time: float | None = None  # no rate limit on the first command

    def engage_estop(self, position, rotation) -> None:
        self._estop = True
        self._hold = _Pose(np.array(position, float), np.array(rotation, float))

    def clear_estop(self, position, rotation, now: float) -> None:
        self._estop = False
        self.reset(position, rotation, now)

    @property
    def estopped(self) -> bool:
        return self._estop

    # -- commands --------------------------------------------------------------------------------
    def submit(self, position, rotation, now: float, measured_position=None) -> SafetyStatus:
        """Filter a new target pose; the result is what `output` returns until the next one."""
        if self._target is None:
            raise RuntimeError("SafetyFilter.submit called before reset(measured pose)")
        status = SafetyStatus()
        if self._estop:
            status.estop = True
            return status
        position = np.asarray(position, dtype=float)
        rotation = np.asarray(rotation, dtype=float)
        if (
            position.shape != (3,)
            or rotation.shape != (3, 3)
            or not (np.all(np.isfinite(position)) and np.all(np.isfinite(rotation)))
            or not _is_rotation(rotation)
        ):
            status.rejected_nonfinite = True
            return status
        previous = self._hold if self._hold is not None else self._target
        dt = np.inf if self._last_submit_time is None else max(now - self._last_submit_time, 0.0)

        # Step and rate limits, relative to the previous target.
        delta = position - previous.position
        max_step = min(self.limits.max_translation_per_command, self.limits.max_linear_speed * dt)
        dist = float(np.linalg.norm(delta))
        if dist > max_step:
            delta *= max_step / dist
            status.step_limited = dist > self.limits.max_translation_per_command
            status.rate_limited = not status.step_limited
        rot_delta = rotation_error(rotation, previous.rotation)
        max_rot = min(self.limits.max_rotation_per_command, self.limits.max_angular_speed * dt)
        angle = float(np.linalg.norm(rot_delta))
        if angle > max_rot:
            rot_delta *= max_rot / angle
            status.step_limited |= angle > self.limits.max_rotation_per_command
            status.rate_limited |= angle <= self.limits.max_rotation_per_command
        pose = _Pose(previous.position + delta, exp_map(rot_delta) @ previous.rotation)
        if measured_position is not None:
            lead = pose.position - np.asarray(measured_position, dtype=float)
            lead_norm = float(np.linalg.norm(lead))
            if lead_norm > self.limits.max_target_lead:
                pose.position = pose.position - lead * (1.0 - self.limits.max_target_lead / lead_norm)
                status.lead_limited = True

        self._target, clipped_pos, clipped_rot = self._clip_to_box(pose)
        status.workspace_clipped = clipped_pos
        status.orientation_clipped = clipped_rot
        self._hold = None
        self._last_command_time = self._last_submit_time = now
        return status

    def output(self, now: float, position, rotation) -> tuple[np.ndarray, np.ndarray, SafetyStatus]:
        """The pose to command now, given the measured pose: the last filtered target, or a hold."""
        if self._target is None:
            raise RuntimeError("SafetyFilter.output called before reset(measured pose)")
        status = SafetyStatus()
        if self._estop:
            status.estop = True
            return self._hold.position.copy(), self._hold.rotation.copy(), status
        if now - self._last_command_time > self.limits.command_timeout_s:
            status.stale_hold = True
            if self._hold is None:
                self._hold = self._clip_to_box(
                    _Pose(np.array(position, float), np.array(rotation, float))
                )[0]
            return self._hold.position.copy(), self._hold.rotation.copy(), status
        return self._target.position.copy(), self._target.rotation.copy(), status

    # -- helpers ---------------------------------------------------------------------------------
    def _clip_to_box(self, pose: _Pose) -> tuple[_Pose, bool, bool]:
        position = np.clip(pose.position, self._low, self._high)
        deviation = log_map(pose.rotation @ self._ref.T)
        clipped_dev = np.clip(deviation, -self._max_dev, self._max_dev)
        clipped_rot = not np.allclose(clipped_dev, deviation)
        rotation = exp_map(clipped_dev) @ self._ref if clipped_rot else pose.rotation
        return _Pose(position, rotation), bool(np.any(position != pose.position)), clipped_rot
