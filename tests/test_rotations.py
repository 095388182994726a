"""Rotation helpers: exp/log maps, quaternions and the rotation error used by the controllers."""

from __future__ import annotations

import numpy as np
import pytest

from controllers.rotations import (
    angle_between,
    exp_map,
    log_map,
    mat_to_quat,
    quat_to_mat,
    rotation_error,
    skew,
)


def _unit(rng, n=None):
    v = rng.normal(size=(3,) if n is None else (n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _random_rotation(rng):
    return exp_map(_unit(rng) * rng.uniform(0.0, np.pi))


def _assert_rotation(rot, atol=1e-12):
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=atol)
    assert np.linalg.det(rot) > 0


# Angles from tiny to pi itself, including the branch boundaries of log_map (1e-6 and pi - 1e-4).
ANGLES = [
    0.0, 1e-12, 1e-9, 5e-7, 1e-6, 2e-6, 1e-4, 1e-2, 0.5, 1.0, 2.0, 3.0,
    np.pi - 1e-3, np.pi - 1.5e-4, np.pi - 1e-4, np.pi - 5e-5, np.pi - 1e-6, np.pi - 1e-9, np.pi,
]


def test_skew_is_cross_product():
    rng = np.random.default_rng(0)
    for a, b in zip(rng.normal(size=(20, 3)), rng.normal(size=(20, 3))):
        np.testing.assert_allclose(skew(a) @ b, np.cross(a, b), atol=1e-12)
        np.testing.assert_allclose(skew(a), -skew(a).T)


def test_exp_map_known_rotations():
    np.testing.assert_allclose(exp_map(np.zeros(3)), np.eye(3))
    rz = exp_map(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(rz @ np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-12)
    rx = exp_map(np.array([np.pi, 0.0, 0.0]))
    np.testing.assert_allclose(rx, np.diag([1.0, -1.0, -1.0]), atol=1e-12)


def test_exp_map_is_a_rotation_and_keeps_its_axis():
    rng = np.random.default_rng(1)
    for angle in ANGLES:
        for axis in _unit(rng, 10):
            rot = exp_map(axis * angle)
            _assert_rotation(rot, atol=1e-12)
            np.testing.assert_allclose(rot @ axis, axis, atol=1e-12)
            np.testing.assert_allclose(np.trace(rot), 1.0 + 2.0 * np.cos(angle), atol=1e-12)


@pytest.mark.parametrize("angle", ANGLES)
def test_log_map_inverts_exp_map(angle):
    rng = np.random.default_rng(2)
    for axis in _unit(rng, 40):
        rotvec = axis * angle
        rot = exp_map(rotvec)
        back = log_map(rot)
        assert np.all(np.isfinite(back))
        assert np.linalg.norm(back) <= np.pi + 1e-12
        # Within ~1e-3 of pi the angle from arccos(trace) is ill-conditioned (error ~ eps / (pi - angle)^2,
        # about 2e-7 rad just above the branch switch at pi - 1e-4); elsewhere the round trip is tight.
        atol = 1e-6 if angle > np.pi - 2e-3 else 1e-9
        np.testing.assert_allclose(exp_map(back), rot, atol=atol)
        if angle < np.pi - 1e-6:
            np.testing.assert_allclose(back, rotvec, atol=atol)
        else:
            # At pi, r and -r are the same rotation: either is a correct answer.
            assert min(np.linalg.norm(back - rotvec), np.linalg.norm(back + rotvec)) < 1e-6


def test_log_map_relative_accuracy_for_tiny_angles():
    rng = np.random.default_rng(3)
    for angle in (1e-15, 1e-12, 1e-9, 1e-7, 1e-6, 1e-5):
        for axis in _unit(rng, 10):
            back = log_map(exp_map(axis * angle))
            np.testing.assert_allclose(back, axis * angle, rtol=1e-6, atol=1e-300)


def test_log_map_near_pi_keeps_the_sign_of_the_axis():
    # Just below pi the rotation vector is unique: the sign must come from the antisymmetric part.
    rng = np.random.default_rng(4)
    for delta in (1e-3, 1e-4, 5e-5, 1e-5, 1e-7):
        for axis in _unit(rng, 20):
            rotvec = axis * (np.pi - delta)
            np.testing.assert_allclose(log_map(exp_map(rotvec)), rotvec, atol=1e-6)


def test_log_map_random_rotation_vectors_round_trip():
    rng = np.random.default_rng(5)
    for _ in range(300):
        rotvec = _unit(rng) * rng.uniform(0.0, np.pi)
        np.testing.assert_allclose(log_map(exp_map(rotvec)), rotvec, atol=1e-7)


def test_exp_map_wraps_angles_above_pi():
    rng = np.random.default_rng(6)
    for _ in range(50):
        axis = _unit(rng)
        angle = rng.uniform(np.pi + 0.01, 2 * np.pi - 0.01)
        back = log_map(exp_map(axis * angle))
        np.testing.assert_allclose(back, -axis * (2 * np.pi - angle), atol=1e-9)


def test_quat_to_mat_known_values():
    np.testing.assert_allclose(quat_to_mat(np.array([1.0, 0.0, 0.0, 0.0])), np.eye(3))
    half = np.pi / 4  # 90 deg about z
    np.testing.assert_allclose(
        quat_to_mat(np.array([np.cos(half), 0.0, 0.0, np.sin(half)])),
        exp_map(np.array([0.0, 0.0, np.pi / 2])),
        atol=1e-12,
    )
    # Unnormalised quaternions are normalised first.
    np.testing.assert_allclose(quat_to_mat(np.array([3.0, 0.0, 0.0, 0.0])), np.eye(3))


def test_quaternion_round_trips():
    rng = np.random.default_rng(7)
    for _ in range(300):
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        rot = quat_to_mat(quat)
        _assert_rotation(rot, atol=1e-12)
        back = mat_to_quat(rot)
        np.testing.assert_allclose(np.linalg.norm(back), 1.0, atol=1e-12)
        assert back[0] >= 0.0
        canonical = quat if quat[0] >= 0 else -quat
        np.testing.assert_allclose(back, canonical, atol=1e-7)
        np.testing.assert_allclose(quat_to_mat(back), rot, atol=1e-9)


@pytest.mark.parametrize("angle", ANGLES)
def test_mat_to_quat_round_trip_at_all_angles(angle):
    rng = np.random.default_rng(8)
    for axis in _unit(rng, 10):
        rot = exp_map(axis * angle)
        quat = mat_to_quat(rot)
        np.testing.assert_allclose(np.linalg.norm(quat), 1.0, atol=1e-12)
        assert quat[0] >= -1e-12  # w >= 0 up to rounding (cos(pi / 2) in floating point)
        np.testing.assert_allclose(quat_to_mat(quat), rot, atol=1e-6 if angle > np.pi - 2e-3 else 1e-9)


def test_rotation_error_turns_current_into_target():
    rng = np.random.default_rng(9)
    for _ in range(200):
        target, current = _random_rotation(rng), _random_rotation(rng)
        r = rotation_error(target, current)
        assert np.linalg.norm(r) <= np.pi + 1e-12
        np.testing.assert_allclose(exp_map(r) @ current, target, atol=1e-9)


def test_rotation_error_small_and_near_pi():
    rng = np.random.default_rng(10)
    for angle in (0.0, 1e-10, 1e-6, 0.1, np.pi - 1e-4, np.pi - 1e-7, np.pi):
        for _ in range(10):
            current = _random_rotation(rng)
            rotvec = _unit(rng) * angle
            target = exp_map(rotvec) @ current
            r = rotation_error(target, current)
            np.testing.assert_allclose(exp_map(r) @ current, target, atol=1e-6)
            np.testing.assert_allclose(np.linalg.norm(r), angle, atol=1e-6)
    np.testing.assert_allclose(rotation_error(current, current), np.zeros(3), atol=1e-12)


def test_angle_between_is_a_symmetric_metric():
    rng = np.random.default_rng(11)
    for _ in range(100):
        a, b, c = _random_rotation(rng), _random_rotation(rng), _random_rotation(rng)
        ab = angle_between(a, b)
        assert 0.0 <= ab <= np.pi + 1e-12
        np.testing.assert_allclose(ab, angle_between(b, a), atol=1e-9)
        assert angle_between(a, c) <= ab + angle_between(b, c) + 1e-9
        np.testing.assert_allclose(angle_between(a, a), 0.0, atol=1e-7)
