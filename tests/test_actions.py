"""Normalised policy actions -> end-effector commands."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from controllers.actions import ActionSpec, EndEffectorCommand, action_to_command, validate_action
from controllers.rotations import exp_map

POSITION = np.array([0.5, -0.1, 0.2])


def _random_rotation(rng):
    axis = rng.normal(size=3)
    return exp_map(axis / np.linalg.norm(axis) * rng.uniform(0.3, np.pi - 0.1))


# -- ActionSpec ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rotation, gripper, dim, names",
    [
        (False, False, 3, ("dx", "dy", "dz")),
        (False, True, 4, ("dx", "dy", "dz", "gripper")),
        (True, False, 6, ("dx", "dy", "dz", "droll", "dpitch", "dyaw")),
        (True, True, 7, ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")),
    ],
)
@pytest.mark.parametrize("frame", ["base", "ee"])
def test_spec_dim_and_names(rotation, gripper, dim, names, frame):
    spec = ActionSpec(rotation=rotation, gripper=gripper, frame=frame)
    assert spec.dim == dim
    assert spec.names == names
    assert len(spec.names) == spec.dim


def test_spec_defaults():
    spec = ActionSpec()
    assert spec.dim == 4 and spec.frame == "base" and not spec.rotation and spec.gripper
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.frame = "ee"  # type: ignore[misc]


@pytest.mark.parametrize("frame", ["world", "EE", "", "tool", None])
def test_spec_bad_frame(frame):
    with pytest.raises(ValueError, match="frame"):
        ActionSpec(frame=frame)


@pytest.mark.parametrize("scale", [0.0, -0.01, 0.21, 1.0, np.nan, np.inf])
def test_spec_bad_translation_scale(scale):
    with pytest.raises(ValueError, match="translation_scale"):
        ActionSpec(translation_scale=scale)


@pytest.mark.parametrize("scale", [0.0, -0.1, 1.01, np.nan, np.inf])
def test_spec_bad_rotation_scale(scale):
    with pytest.raises(ValueError, match="rotation_scale"):
        ActionSpec(rotation_scale=scale)


def test_spec_scale_bounds_are_inclusive():
    ActionSpec(translation_scale=0.2, rotation_scale=1.0)
    ActionSpec(translation_scale=1e-6, rotation_scale=1e-6)


# -- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation, gripper", list(itertools.product([False, True], [False, True])))
def test_wrong_shape_mentions_expected_layout(rotation, gripper):
    spec = ActionSpec(rotation=rotation, gripper=gripper)
    for bad in (np.zeros(spec.dim + 1), np.zeros(spec.dim - 1), np.zeros((1, spec.dim)), np.zeros(()), []):
        with pytest.raises(ValueError) as info:
            action_to_command(bad, spec, POSITION, np.eye(3))
        message = str(info.value)
        assert f"({spec.dim},)" in message
        assert str(list(spec.names)) in message
        assert str(np.shape(bad)) in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entry_is_named(bad):
    spec = ActionSpec(rotation=True, gripper=True)
    for i, name in enumerate(spec.names):
        action = np.zeros(spec.dim)
        action[i] = bad
        with pytest.raises(ValueError, match=rf"\['{name}'\]"):
            action_to_command(action, spec, POSITION, np.eye(3))


def test_nan_dy_is_named():
    with pytest.raises(ValueError, match="'dy'"):
        action_to_command([0.0, np.nan, 0.0, 0.0], ActionSpec(), POSITION, np.eye(3))


def test_all_non_finite_entries_are_named():
    spec = ActionSpec(rotation=True, gripper=True)
    action = np.zeros(7)
    action[[0, 4, 6]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(ValueError, match=r"\['dx', 'dpitch', 'gripper'\]"):
        validate_action(action, spec)


def test_validate_action_returns_float64_copy():
    spec = ActionSpec()
    action = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    out = validate_action(action, spec)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, action)
    out = validate_action([1, 2, 3, 4], spec)  # lists and ints are fine; no clipping here
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0, 4.0])


# -- translation -----------------------------------------------------------------------------------------


def test_base_frame_translation_scaling():
    rng = np.random.default_rng(0)
    spec = ActionSpec(translation_scale=0.05, gripper=False)
    for _ in range(50):
        rotation = _random_rotation(rng)  # irrelevant in the base frame
        action = rng.uniform(-1.0, 1.0, 3)
        cmd = action_to_command(action, spec, POSITION, rotation)
        assert isinstance(cmd, EndEffectorCommand)
        np.testing.assert_allclose(cmd.position, POSITION + 0.05 * action)
        np.testing.assert_allclose(cmd.rotation, rotation)  # no rotation entries: unchanged
        assert cmd.gripper is None


def test_ee_frame_translation_is_rotated():
    rng = np.random.default_rng(1)
    base = ActionSpec(translation_scale=0.03, gripper=False, frame="base")
    ee = dataclasses.replace(base, frame="ee")
    for _ in range(50):
        rotation = _random_rotation(rng)
        action = rng.uniform(-1.0, 1.0, 3)
        cmd = action_to_command(action, ee, POSITION, rotation)
        np.testing.assert_allclose(cmd.position, POSITION + rotation @ (0.03 * action), atol=1e-15)
        # Same length as in the base frame, different direction.
        delta_base = action_to_command(action, base, POSITION, rotation).position - POSITION
        np.testing.assert_allclose(np.linalg.norm(cmd.position - POSITION), np.linalg.norm(delta_base))
    # A concrete case: 90 degrees about z maps +x (ee) to +y (base).
    rz = exp_map(np.array([0.0, 0.0, np.pi / 2]))
    cmd = action_to_command([1.0, 0.0, 0.0], ee, POSITION, rz)
    np.testing.assert_allclose(cmd.position, POSITION + [0.0, 0.03, 0.0], atol=1e-15)
    # With the gripper pointing down (180 deg about x), +z in the ee frame is -z in the base frame.
    down = np.diag([1.0, -1.0, -1.0])
    cmd = action_to_command([0.0, 0.0, 1.0], ee, POSITION, down)
    np.testing.assert_allclose(cmd.position, POSITION + [0.0, 0.0, -0.03], atol=1e-15)


def test_identity_orientation_frames_agree():
    rng = np.random.default_rng(2)
    for _ in range(20):
        action = rng.uniform(-1.0, 1.0, 7)
        base = action_to_command(action, ActionSpec(rotation=True), POSITION, np.eye(3))
        ee = action_to_command(action, ActionSpec(rotation=True, frame="ee"), POSITION, np.eye(3))
        np.testing.assert_allclose(base.position, ee.position)
        np.testing.assert_allclose(base.rotation, ee.rotation)


def test_zero_action_keeps_pose():
    rng = np.random.default_rng(3)
    rotation = _random_rotation(rng)
    for frame in ("base", "ee"):
        cmd = action_to_command(np.zeros(7), ActionSpec(rotation=True, frame=frame), POSITION, rotation)
        np.testing.assert_allclose(cmd.position, POSITION)
        np.testing.assert_allclose(cmd.rotation, rotation, atol=1e-15)
        assert cmd.gripper == 0.5


def test_inputs_are_not_mutated():
    position, rotation = POSITION.copy(), exp_map(np.array([0.1, 0.2, 0.3]))
    rotation_copy = rotation.copy()
    action = np.array([2.0, -2.0, 0.5, 1.0, 1.0, 1.0, 3.0])
    action_copy = action.copy()
    action_to_command(action, ActionSpec(rotation=True, frame="ee"), position, rotation)
    np.testing.assert_array_equal(position, POSITION)
    np.testing.assert_array_equal(rotation, rotation_copy)
    np.testing.assert_array_equal(action, action_copy)


# -- rotation --------------------------------------------------------------------------------------------


def test_rotation_deltas_base_vs_ee_frame():
    rng = np.random.default_rng(4)
    for _ in range(50):
        rotation = _random_rotation(rng)
        action = np.r_[np.zeros(3), rng.uniform(-1.0, 1.0, 3)]
        delta = exp_map(0.15 * action[3:])
        base = action_to_command(action, ActionSpec(rotation=True, gripper=False), POSITION, rotation)
        ee_spec = ActionSpec(rotation=True, gripper=False, frame="ee")
        ee = action_to_command(action, ee_spec, POSITION, rotation)
        np.testing.assert_allclose(base.rotation, delta @ rotation, atol=1e-12)  # about base axes
        np.testing.assert_allclose(ee.rotation, rotation @ delta, atol=1e-12)  # about the gripper's axes
        for rot in (base.rotation, ee.rotation):
            np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(rot) > 0
        # An ee-frame rotation about axis w equals a base-frame rotation about R w.
        about_base = exp_map(rotation @ (0.15 * action[3:])) @ rotation
        np.testing.assert_allclose(ee.rotation, about_base, atol=1e-12)
        # The two differ for a generic orientation.
        assert not np.allclose(base.rotation, ee.rotation, atol=1e-6)


def test_rotation_scale_and_axes():
    spec = ActionSpec(rotation=True, rotation_scale=0.2, gripper=False)
    for i, name in enumerate(("droll", "dpitch", "dyaw")):
        action = np.zeros(6)
        action[3 + i] = 1.0
        cmd = action_to_command(action, spec, POSITION, np.eye(3))
        expected_rotvec = np.zeros(3)
        expected_rotvec[i] = 0.2
        np.testing.assert_allclose(cmd.rotation, exp_map(expected_rotvec), atol=1e-15, err_msg=name)
        np.testing.assert_allclose(cmd.position, POSITION)  # rotation entries do not translate


def test_rotation_entries_ignored_without_rotation():
    rng = np.random.default_rng(5)
    rotation = _random_rotation(rng)
    spec = ActionSpec(rotation=False, gripper=True)
    cmd = action_to_command([0.0, 0.0, 0.0, 1.0], spec, POSITION, rotation)
    np.testing.assert_allclose(cmd.rotation, rotation)


# -- clipping --------------------------------------------------------------------------------------------


def test_values_outside_unit_box_are_clipped():
    rng = np.random.default_rng(6)
    for frame in ("base", "ee"):
        spec = ActionSpec(rotation=True, gripper=True, frame=frame)
        for _ in range(30):
            rotation = _random_rotation(rng)
            action = rng.uniform(-50.0, 50.0, 7)
            clipped = np.clip(action, -1.0, 1.0)
            cmd = action_to_command(action, spec, POSITION, rotation)
            ref = action_to_command(clipped, spec, POSITION, rotation)
            np.testing.assert_allclose(cmd.position, ref.position)
            np.testing.assert_allclose(cmd.rotation, ref.rotation)
            assert cmd.gripper == ref.gripper
            # The largest possible step is the scale on every axis.
            assert np.all(np.abs(np.linalg.solve(rotation, cmd.position - POSITION) if frame == "ee"
                                 else cmd.position - POSITION) <= spec.translation_scale + 1e-15)
    cmd = action_to_command([1e30, -1e30, 5.0, 0.0], ActionSpec(), POSITION, np.eye(3))
    np.testing.assert_allclose(cmd.position, POSITION + [0.03, -0.03, 0.03])


# -- gripper ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected", [(-1.0, 0.0), (1.0, 1.0), (0.0, 0.5), (0.5, 0.75), (-5.0, 0.0), (7.0, 1.0)]
)
def test_gripper_mapping(value, expected):
    for spec in (ActionSpec(), ActionSpec(rotation=True)):
        action = np.zeros(spec.dim)
        action[-1] = value
        cmd = action_to_command(action, spec, POSITION, np.eye(3))
        assert isinstance(cmd.gripper, float)
        assert cmd.gripper == pytest.approx(expected)


def test_gripper_none_without_gripper_entry():
    assert action_to_command(np.ones(3), ActionSpec(gripper=False), POSITION, np.eye(3)).gripper is None
    spec = ActionSpec(rotation=True, gripper=False)
    assert action_to_command(np.ones(6), spec, POSITION, np.eye(3)).gripper is None
