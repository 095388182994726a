"""Safety filter: every end-effector target pose sent to a robot (or the simulator) passes here.

A submitted target is refused (the previous output stays) when it is non-finite or malformed, when its
clock is not finite or runs backwards, when the measured position that comes with it is non-finite or
jumped faster than `max_measured_speed` (a sensor fault must not pull the target), while the e-stop is
engaged, or when the arm is held outside the workspace box by more than one step. Otherwise:
1. lead limit: the target is pulled to within `max_target_lead` of the measured position, so a blocked
   arm does not wind its target up and then leap when released;
2. workspace box on position and a per-axis box on the orientation's deviation from a reference;
3. step limit (`max_translation_per_command` / `max_rotation_per_command`) and rate limit
   (`max_linear_speed` / `max_angular_speed` times the time since the previous change of the output)
   from the previous output towards that target. They come last, so no other limit can make a jump.
   Orientation steps are taken in the box's own coordinates (the rotation vector of the deviation from
   the reference), where the box is convex; the exponential map never lengthens a path, so the arm's
   rotation changes by no more than the step.
Then, when the robot asks what to do now (`output`):
4. hold (`stale_hold`): no accepted command for `command_timeout_s` (the watchdog), or a bad clock, or
   a measurement fault -> hold the measured pose (the previous output where the measurement is not
   trustworthy). A jump in the measured position latches a measurement fault until `reset`;
5. e-stop: while engaged, hold the pose measured when it was engaged and refuse new targets.

Invariants (tests/test_safety.py attacks them with random sequences of commands, clocks and measurements):
every output is finite; two consecutive outputs differ by at most the step and rate limits unless the new
one is the arm's own measured pose (a hold where it is); nothing is output before a valid measured pose
(`reset`); an output outside the box is only ever "stay where you are"; `command_timeout_s` without an
accepted command means a hold; an e-stop holds until it is cleared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controllers.rotations import exp_map, log_map

EE_DOWN = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)  # gripper pointing at the table
MEASUREMENT_SLACK_M = 1e-3  # sensor noise and timestamp jitter allowed on top of max_measured_speed
# A measurement after a longer gap is judged as if after this one: an absurd jump of the clock must not make
# any jump of the measurement look plausible. (Bridges and envs look at least every control period.)
MAX_MEASUREMENT_GAP_S = 1.0


def _is_rotation(rot: np.ndarray, atol: float = 1e-4) -> bool:
    """Orthonormal with det +1 (checked on bounded entries first, so huge values cannot overflow).
    Anything else (e.g. -R) would make log_map return NaN and poison every later target."""
    return bool(
        np.all(np.isfinite(rot))
        and np.all(np.abs(rot) <= 1.0 + atol)
        and np.allclose(rot @ rot.T, np.eye(3), atol=atol)
        and np.linalg.det(rot) > 0
    )


def _valid_pose(position, rotation) -> tuple[np.ndarray, np.ndarray] | None:
    """(position, rotation) as float arrays, or None when either is malformed or non-finite."""
    try:
        position = np.array(position, dtype=float)
        rotation = np.array(rotation, dtype=float)
    except (TypeError, ValueError):
        return None
    if position.shape != (3,) or rotation.shape != (3, 3) or not np.all(np.isfinite(position)):
        return None
    return (position, rotation) if _is_rotation(rotation) else None


def _finite_time(now) -> bool:
    try:
        return bool(np.isfinite(float(now)))
    except (TypeError, ValueError):
        return False


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
    # A measured position that implies a faster move than this is a sensor fault, not the arm: commands
    # that come with it are refused and a hold does not go there. (FR3: 3 m/s at most; hand guiding is slower.)
    max_measured_speed: float = 2.0  # m/s
    # Wrench limits on the measured external force/torque at the end effector (None: not checked). A bridge
    # that reads the wrench holds the arm where it is and ends the episode when one is exceeded.
    max_force: float | None = None  # N
    max_torque: float | None = None  # N m

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
            "max_measured_speed",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"SafetyLimits.{name} must be a positive number, got {value}")

        for name in ("max_force", "max_torque"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"SafetyLimits.{name} must be a positive number or null (off), got {value!r}")

    def contains(self, position: np.ndarray) -> bool:
        return bool(np.all(position >= self.workspace_low) and np.all(position <= self.workspace_high))

    def wrench_violation(self, force, torque) -> str | None:
        """Why the measured wrench (N, N m) breaks a limit, or None. A non-finite reading breaks them."""
        for name, value, limit, unit in (("force", force, self.max_force, "N"),
                                         ("torque", torque, self.max_torque, "N m")):
            if limit is None:
                continue
            norm = float(np.linalg.norm(np.asarray(value, dtype=float)))
            if not norm <= limit:  # also catches NaN
                return f"external {name} {norm:.1f} {unit} over the limit {limit:g} {unit}"
        return None


@dataclass
class SafetyStatus:
    """What the filter did to the last command or output (all False: passed unchanged)."""

    rejected_nonfinite: bool = False  # malformed or non-finite target: refused
    rejected_clock: bool = False  # non-finite time, or time running backwards: refused / held
    rejected_measurement: bool = False  # non-finite or implausibly jumping measured position: refused
    outside_workspace: bool = False  # held outside the box by more than one step: refused
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

    @property
    def rejected(self) -> bool:
        """The command was not accepted (it does not count for the watchdog)."""
        return (self.rejected_nonfinite or self.rejected_clock or self.rejected_measurement
                or self.outside_workspace or self.estop)


@dataclass
class _Pose:
    position: np.ndarray
    rotation: np.ndarray = field(repr=False)

    def copy(self) -> _Pose:
        return _Pose(self.position.copy(), self.rotation.copy())


class SafetyFilter:
    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self._low = np.asarray(limits.workspace_low, dtype=float)
        self._high = np.asarray(limits.workspace_high, dtype=float)
        self._ref = np.asarray(limits.reference_rotation, dtype=float).reshape(3, 3)
        self._max_dev = np.asarray(limits.max_orientation_deviation, dtype=float)
        self._target: _Pose | None = None  # what `output` returns when not holding
        self._hold: _Pose | None = None  # a latched hold (watchdog or e-stop): overrides the target
        self._clock = -np.inf  # the latest time seen; earlier times are a clock fault
        self._last_command_time = 0.0  # last accepted command (or reset): the watchdog counts from here
        self._last_change_time: float | None = None  # last change of the output; None: no rate limit yet
        self._measured: tuple[np.ndarray, float] | None = None  # last plausible measured position, time
        self._measurement_fault = False  # latched by a jump in the measured position, until `reset`
        self._estop = False

    # -- lifecycle -------------------------------------------------------------------------------
    def reset(self, position, rotation, now: float) -> SafetyStatus:
        """Start from the measured pose, exactly where the arm is (even outside the box: the first
        commands then bring it in, or are refused while it is more than a step outside). An engaged
        e-stop stays engaged; one engaged before any measured pose holds this pose."""
        pose = _valid_pose(position, rotation)
        if pose is None:
            raise ValueError("SafetyFilter.reset needs a measured pose: a finite position (3,) and a rotation matrix")
        if not _finite_time(now):
            raise ValueError(f"SafetyFilter.reset needs a finite time, got {now!r}")
        now = float(now)
        self._target = _Pose(*pose)
        if not self._estop:
            self._hold = None
        elif self._hold is None:
            self._hold = self._target.copy()
        self._clock = self._last_command_time = now
        self._last_change_time = None  # the first command after a reset is step-limited only
        self._measured = (pose[0], now)
        self._measurement_fault = False
        return SafetyStatus(outside_workspace=not self.limits.contains(pose[0]))

    def engage_estop(self, position=None, rotation=None, now: float | None = None) -> None:
        """Latch a hold at the given measured pose, or at the present output where that pose is missing,
        malformed or (given `now`) jumped implausibly far from the previous measurement."""
        if self._estop:
            return
        self._estop = True
        pose = _valid_pose(position, rotation)
        if pose is not None and now is not None and self._target is not None:
            clock_ok = _finite_time(now) and float(now) >= self._clock
            if not clock_ok or self._plausible(pose[0], float(now)) is None:
                pose = None
        if pose is not None:
            self._hold = _Pose(*pose)
        elif self._hold is None and self._target is not None:
            self._hold = self._target.copy()

    def clear_estop(self, position, rotation, now: float) -> SafetyStatus:
        self._estop = False
        self._hold = None
        return self.reset(position, rotation, now)

    @property
    def estopped(self) -> bool:
        return self._estop

    @property
    def started(self) -> bool:
        return self._target is not None

    # -- commands --------------------------------------------------------------------------------
    def submit(self, position, rotation, now: float, measured_position=None) -> SafetyStatus:
        """Filter a new target pose; the result is what `output` returns until the next one."""
        if self._target is None:
            raise RuntimeError("SafetyFilter.submit called before reset(measured pose)")
        status = SafetyStatus()
        if self._estop:
            status.estop = True
            return status
        if not _finite_time(now) or float(now) < self._clock:
            status.rejected_clock = True
            return status
        now = float(now)
        pose = _valid_pose(position, rotation)
        if pose is None:
            status.rejected_nonfinite = True
            return status
        measured = None
        if measured_position is not None or self._measurement_fault:
            measured = self._plausible(measured_position, now)
            if measured is None:
                status.rejected_measurement = True
                return status
        lim = self.limits
        anchor = self._hold if self._hold is not None else self._target
        dt = np.inf if self._last_change_time is None else now - self._last_change_time

        # 1-2. Where the target may go: near the measured position, inside the boxes.
        goal = pose[0]
        if measured is not None:
            lead = goal - measured
            lead_norm = float(np.linalg.norm(lead))
            if lead_norm > lim.max_target_lead:
                goal = measured + lead * (lim.max_target_lead / lead_norm)
                status.lead_limited = True
        goal_in = np.clip(goal, self._low, self._high)
        status.workspace_clipped = bool(np.any(goal_in != goal))
        goal_dev = log_map(pose[1] @ self._ref.T)
        goal_dev_in = np.clip(goal_dev, -self._max_dev, self._max_dev)
        status.orientation_clipped = bool(np.any(goal_dev_in != goal_dev))

        # 3. Step and rate limits from the previous output. A hold outside the box first comes in, within
        # the same budget; further out than that, the command is refused (the operator jogs the arm in).
        new_position = self._step(anchor.position, np.clip(anchor.position, self._low, self._high), goal_in,
                                  lim.max_translation_per_command, lim.max_linear_speed * dt, status)
        anchor_dev = log_map(anchor.rotation @ self._ref.T)
        new_dev = self._step(anchor_dev, np.clip(anchor_dev, -self._max_dev, self._max_dev), goal_dev_in,
                             lim.max_rotation_per_command, lim.max_angular_speed * dt, status)
        if new_position is None or new_dev is None:
            status.outside_workspace = True
            status.step_limited = status.rate_limited = False
            return status
        self._target = _Pose(new_position, exp_map(new_dev) @ self._ref)
        self._hold = None
        self._clock = self._last_command_time = self._last_change_time = now
        return status

    def output(self, now: float, position, rotation) -> tuple[np.ndarray, np.ndarray, SafetyStatus]:
        """The pose to command now, given the measured pose: the last filtered target, or a hold."""
        if self._target is None:
            raise RuntimeError("SafetyFilter.output called before reset(measured pose)")
        status = SafetyStatus()
        clock_ok = _finite_time(now) and float(now) >= self._clock
        measured = None
        if clock_ok:
            now = float(now)
            self._clock = now
            pose = _valid_pose(position, rotation)
            if pose is not None and self._plausible(pose[0], now) is not None:
                measured = pose
        if self._estop:
            status.estop = True
            return self._hold.position.copy(), self._hold.rotation.copy(), status
        status.rejected_clock = not clock_ok
        status.rejected_measurement = self._measurement_fault
        if not clock_ok or self._measurement_fault or now - self._last_command_time > self.limits.command_timeout_s:
            status.stale_hold = True
            if self._hold is None:  # hold where the arm is; where that is not known, where we were
                self._hold = _Pose(*measured) if measured is not None else self._target.copy()
                if clock_ok:
                    self._last_change_time = now
            return self._hold.position.copy(), self._hold.rotation.copy(), status
        return self._target.position.copy(), self._target.rotation.copy(), status

    # -- helpers ---------------------------------------------------------------------------------
    def _plausible(self, measured_position, now: float) -> np.ndarray | None:
        """The measured position, or None when it is non-finite or jumped faster than the arm can move.
        A jump latches a measurement fault until `reset`: commands are refused and the output holds."""
        if self._measurement_fault:
            return None
        try:
            position = np.array(measured_position, dtype=float)
        except (TypeError, ValueError):
            return None
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            return None
        if self._measured is not None:
            last, then = self._measured
            gap = min(max(now - then, 0.0), MAX_MEASUREMENT_GAP_S)
            allowed = self.limits.max_measured_speed * gap + MEASUREMENT_SLACK_M
            if not float(np.linalg.norm(position - last)) <= allowed:
                self._measurement_fault = True
                return None
        self._measured = (position, now)
        return position

    @staticmethod
    def _step(start, start_in, goal, max_step, max_rate_step, status: SafetyStatus):
        """From `start` (its projection into the box is `start_in`) towards `goal` (in the box), by at
        most min(max_step, max_rate_step) in all, the way into the box included; None if that budget
        cannot even reach the box."""
        budget = min(max_step, max_rate_step)
        outside = float(np.linalg.norm(start_in - start))
        if outside > budget:
            return None
        delta = goal - start_in
        dist = float(np.linalg.norm(delta))
        if outside + dist > budget:
            delta = delta * ((budget - outside) / dist)
            if outside + dist > max_step:
                status.step_limited = True
            else:
                status.rate_limited = True
        return start_in + delta
