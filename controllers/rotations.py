"""Rotation helpers on 3x3 matrices and rotation vectors (axis * angle), numpy only."""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-9


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def exp_map(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < _EPS:
        return np.eye(3) + skew(rotvec)
    k = skew(np.asarray(rotvec, dtype=float) / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def log_map(rot: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix, angle in [0, pi]. Scalar math on purpose: it runs in the
    controller loop, where numpy's per-call overhead on 3x3 inputs dominates."""
    r = rot.tolist()
    cos_angle = min(1.0, max(-1.0, (r[0][0] + r[1][1] + r[2][2] - 1.0) / 2.0))
    angle = math.acos(cos_angle)
    axis_sin = np.array([r[2][1] - r[1][2], r[0][2] - r[2][0], r[1][0] - r[0][1]]) / 2.0
    if angle < 1e-6:
        return axis_sin
    if math.pi - angle > 1e-4:
        return axis_sin * (angle / math.sin(angle))
    # Near pi the antisymmetric part vanishes: read the axis off the symmetric part instead,
    # (R + R^T) / 2 = cos(angle) I + (1 - cos(angle)) a a^T.
    sym = ((rot + rot.T) / 2.0 - cos_angle * np.eye(3)) / (1.0 - cos_angle)
    axis = np.sqrt(np.clip(np.diag(sym), 0.0, None))
    i = int(np.argmax(axis))
    axis = sym[i] / max(axis[i], _EPS)
    axis /= np.linalg.norm(axis)
    if axis_sin @ axis < 0:
        axis = -axis
    return axis * angle


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) that turns `current` into `target`: log(target @ current.T)."""
    return log_map(target @ current.T)


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(rotation_error(a, b)))


def quat_to_mat(quat_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(quat_wxyz, dtype=float) / np.linalg.norm(quat_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def mat_to_quat(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0."""
    rotvec = log_map(rot)
    angle = np.linalg.norm(rotvec)
    if angle < _EPS:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * rotvec / angle])
