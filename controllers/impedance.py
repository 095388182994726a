"""Cartesian impedance control law for a torque-controlled 7-DoF arm.

    tau = J^T (K e - D J dq) + N (K_n (q_n - q) - D_n dq),   N = I - J^+ J

with `e` the pose error (position; orientation as a rotation vector, both in the base frame) clipped
per axis, so that a target far away (or an arm blocked by contact) never produces more than
`K * max_error` of task-space force. Gravity (and Coriolis) compensation are added by the robot
(libfranka's model, MuJoCo's gravcomp), as in franka_ros's Cartesian impedance controller.

Two uses:
- `torque(state, target)`: the whole law, for a torque interface at 500-1000 Hz (about 40 us here);
- `linearize(state, target)`: the same law written as seven spring-dampers along fixed joint-space
  directions (six Jacobian rows plus the nullspace direction). A simulator re-linearises at a modest
  rate and lets its own actuators apply stiffness and damping at every physics step (see sim/arm.py).
  At the linearisation point both give the same torque (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from controllers.rotations import rotation_error

_E7 = np.eye(7)[6]
PANDA_TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)


def _positive_triple(name: str, value) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"ImpedanceGains.{name} must be three positive finite numbers, got {value!r}")
    return tuple(float(x) for x in arr)


@dataclass(frozen=True)
class ImpedanceGains:
    """Stiffness and limits of the impedance law. Damping is critical for a unit mass, scaled by
    `damping_ratio` (franka_ros convention: D = 2 * ratio * sqrt(K))."""

    translational_stiffness: tuple[float, float, float] = (2000.0, 2000.0, 2000.0)  # N/m
    rotational_stiffness: tuple[float, float, float] = (100.0, 100.0, 100.0)  # N m/rad
    damping_ratio: float = 1.0
    nullspace_stiffness: float = 5.0  # N m/rad
    max_position_error: tuple[float, float, float] = (0.02, 0.02, 0.02)  # m, per axis
    max_rotation_error: tuple[float, float, float] = (0.15, 0.15, 0.15)  # rad, per axis
    torque_limits: tuple[float, ...] = field(default=PANDA_TORQUE_LIMITS)  # N m, per joint

    def __post_init__(self) -> None:
        for name in (
            "translational_stiffness",
            "rotational_stiffness",
            "max_position_error",
            "max_rotation_error",
        ):
            object.__setattr__(self, name, _positive_triple(name, getattr(self, name)))
        if not (np.isfinite(self.damping_ratio) and self.damping_ratio > 0):
            raise ValueError(f"ImpedanceGains.damping_ratio must be > 0, got {self.damping_ratio}")
        if not (np.isfinite(self.nullspace_stiffness) and self.nullspace_stiffness >= 0):
            raise ValueError(
                f"ImpedanceGains.nullspace_stiffness must be >= 0, got {self.nullspace_stiffness}"
            )
        limits = np.asarray(self.torque_limits, dtype=float)
        if limits.ndim != 1 or not np.all(limits > 0):
            raise ValueError(f"ImpedanceGains.torque_limits must be positive, got {self.torque_limits}")
        object.__setattr__(self, "torque_limits", tuple(float(x) for x in limits))

    @property
    def stiffness(self) -> np.ndarray:
        return np.array(self.translational_stiffness + self.rotational_stiffness)

    @property
    def damping(self) -> np.ndarray:
        return 2.0 * self.damping_ratio * np.sqrt(self.stiffness)

    @property
    def nullspace_damping(self) -> float:
        return 2.0 * self.damping_ratio * float(np.sqrt(self.nullspace_stiffness))

    @property
    def max_error(self) -> np.ndarray:
        return np.array(self.max_position_error + self.max_rotation_error)

    def scaled(self, stiffness_scale: float) -> "ImpedanceGains":
        """The same law with all stiffnesses scaled (domain randomisation of controller gains)."""
        return ImpedanceGains(
            translational_stiffness=tuple(k * stiffness_scale for k in self.translational_stiffness),
            rotational_stiffness=tuple(k * stiffness_scale for k in self.rotational_stiffness),
            damping_ratio=self.damping_ratio,
            nullspace_stiffness=self.nullspace_stiffness * stiffness_scale,
            max_position_error=self.max_position_error,
            max_rotation_error=self.max_rotation_error,
            torque_limits=self.torque_limits,
        )


@dataclass(frozen=True)
class ArmState:
    """What the law needs from a robot: joints, end-effector pose and its 6xN Jacobian
    (rows: linear then angular velocity, both in the base frame)."""

    q: np.ndarray
    dq: np.ndarray
    position: np.ndarray
    rotation: np.ndarray
    jacobian: np.ndarray


@dataclass(frozen=True)
class Linearization:
    """The law as spring-dampers along joint-space directions `rows` (7 x n): for row i,
    tau += rows[i] * (stiffness[i] * (setpoints[i] - rows[i] @ q) - damping[i] * rows[i] @ dq)."""

    rows: np.ndarray
    setpoints: np.ndarray
    stiffness: np.ndarray
    damping: np.ndarray

    def torque(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        force = self.stiffness * (self.setpoints - self.rows @ q) - self.damping * (self.rows @ dq)
        return self.rows.T @ force


class CartesianImpedanceLaw:
    def __init__(self, gains: ImpedanceGains, nullspace_posture: np.ndarray):
        self.gains = gains
        self.nullspace_posture = np.asarray(nullspace_posture, dtype=float).copy()
        if len(gains.torque_limits) != self.nullspace_posture.shape[0]:
            raise ValueError(
                f"ImpedanceGains.torque_limits has {len(gains.torque_limits)} joints but the "
                f"nullspace posture has {self.nullspace_posture.shape[0]}"
            )
        self._stiffness = gains.stiffness
        self._damping = gains.damping
        self._max_error = gains.max_error
        self._min_error = -self._max_error
        self._torque_limits = np.asarray(gains.torque_limits)
        self._row_stiffness = np.append(self._stiffness, gains.nullspace_stiffness)
        self._row_damping = np.append(self._damping, gains.nullspace_damping)
        self._null: np.ndarray | None = None  # last nullspace direction, warm-starts the next

    def pose_error(self, state: ArmState, target_position, target_rotation) -> np.ndarray:
        """Clipped 6-D pose error (target minus current) in the base frame."""
        error = np.empty(6)
        error[:3] = np.asarray(target_position) - state.position
        error[3:] = rotation_error(np.asarray(target_rotation), state.rotation)
        return np.minimum(np.maximum(error, self._min_error), self._max_error)

    def _nullspace_direction(self, jacobian: np.ndarray) -> np.ndarray:
        """Unit vector spanning null(J) for a 6x7 Jacobian. Warm start: solve [J; n_prev] n = e_7,
        a 7x7 solve (4 us) instead of an SVD (10 us); the SVD is the fallback near singularities."""
        prev = self._null
        if prev is not None and jacobian.shape == (6, 7):
            system = np.empty((7, 7))
            system[:6] = jacobian
            system[6] = prev
            try:
                null = np.linalg.solve(system, _E7)
                norm = math.sqrt(null @ null)
                if 0.999 < norm < 4.0:  # n . n_prev = 1: within 75 deg of the previous direction
                    self._null = null / norm
                    return self._null
            except np.linalg.LinAlgError:
                pass
        null = np.linalg.svd(jacobian)[2][-1]
        if prev is not None and null @ prev < 0:
            null = -null
        self._null = null
        return null

    def _nullspace_projector(self, jacobian: np.ndarray) -> np.ndarray:
        return np.eye(jacobian.shape[1]) - np.linalg.pinv(jacobian) @ jacobian

    def torque(self, state: ArmState, target_position, target_rotation) -> np.ndarray:
        """Joint torques of the full law, clipped to the torque limits."""
        jac = state.jacobian
        error = self.pose_error(state, target_position, target_rotation)
        wrench = self._stiffness * error - self._damping * (jac @ state.dq)
        posture = (
            self.gains.nullspace_stiffness * (self.nullspace_posture - state.q)
            - self.gains.nullspace_damping * state.dq
        )
        tau = jac.T @ wrench + self._nullspace_projector(jac) @ posture
        return np.clip(tau, -self._torque_limits, self._torque_limits)

    def linearize(self, state: ArmState, target_position, target_rotation) -> Linearization:
        """First-order form of `torque` around `state` (exact in dq; torque limits are applied by
        the caller's actuators, per joint)."""
        jac = state.jacobian
        error = self.pose_error(state, target_position, target_rotation)
        null = self._nullspace_direction(jac)
        rows = np.empty((jac.shape[0] + 1, jac.shape[1]))
        rows[:-1] = jac
        rows[-1] = null
        setpoints = np.empty(7)
        setpoints[:6] = jac @ state.q + error
        setpoints[6] = null @ self.nullspace_posture
        return Linearization(rows=rows, setpoints=setpoints, stiffness=self._row_stiffness,
                             damping=self._row_damping)
