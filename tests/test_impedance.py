"""Cartesian impedance law: gain validation, clipping, torque limits, nullspace and linearisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controllers.impedance import (
    PANDA_TORQUE_LIMITS,
    ArmState,
    CartesianImpedanceLaw,
    ImpedanceGains,
    Linearization,
)
from controllers.rotations import exp_map, rotation_error

BIG_LIMITS = (1e9,) * 7


def _random_rotation(rng, max_angle=np.pi):
    axis = rng.normal(size=3)
    return exp_map(axis / np.linalg.norm(axis) * rng.uniform(0.0, max_angle))


def _full_rank_jacobian(rng):
    jac = rng.normal(size=(6, 7))
    assert np.linalg.matrix_rank(jac) == 6
    return jac


def _random_state(rng, dq_scale=0.5):
    return ArmState(
        q=rng.uniform(-2.0, 2.0, 7),
        dq=rng.normal(size=7) * dq_scale,
        position=rng.uniform(-0.5, 0.5, 3),
        rotation=_random_rotation(rng),
        jacobian=_full_rank_jacobian(rng),
    )


def _near_target(rng, state, gains):
    """A target whose pose error is inside the clip box on every axis."""
    position = state.position + rng.uniform(-0.9, 0.9, 3) * np.asarray(gains.max_position_error)
    rotvec = rng.uniform(-0.9, 0.9, 3) * np.asarray(gains.max_rotation_error)
    return position, exp_map(rotvec) @ state.rotation


def _law(gains=None, rng=None, posture=None):
    gains = ImpedanceGains(torque_limits=BIG_LIMITS) if gains is None else gains
    if posture is None:
        posture = (rng or np.random.default_rng(0)).uniform(-1.0, 1.0, 7)
    return CartesianImpedanceLaw(gains, posture)


# -- ImpedanceGains validation ----------------------------------------------------------------------


def test_default_gains_are_valid_and_derived_quantities():
    gains = ImpedanceGains()
    np.testing.assert_allclose(gains.stiffness, [2000.0] * 3 + [100.0] * 3)
    np.testing.assert_allclose(gains.damping, 2.0 * np.sqrt(gains.stiffness))
    np.testing.assert_allclose(gains.nullspace_damping, 2.0 * np.sqrt(5.0))
    np.testing.assert_allclose(gains.max_error, [0.02] * 3 + [0.15] * 3)
    assert gains.torque_limits == PANDA_TORQUE_LIMITS
    # Arrays and lists are normalised to tuples of floats (the dataclass stays hashable).
    g = ImpedanceGains(translational_stiffness=np.array([1, 2, 3]), torque_limits=[1, 2, 3, 4, 5, 6, 7])
    assert g.translational_stiffness == (1.0, 2.0, 3.0)
    assert g.torque_limits == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    hash(g)


@pytest.mark.parametrize(
    "field_name",
    ["translational_stiffness", "rotational_stiffness", "max_position_error", "max_rotation_error"],
)
@pytest.mark.parametrize(
    "bad",
    [
        (-1.0, 1.0, 1.0),
        (0.0, 1.0, 1.0),
        (np.nan, 1.0, 1.0),
        (np.inf, 1.0, 1.0),
        (1.0, 1.0),
        (1.0, 1.0, 1.0, 1.0),
        5.0,
    ],
    ids=["negative", "zero", "nan", "inf", "two", "four", "scalar"],
)
def test_triple_validation_names_the_field(field_name, bad):
    with pytest.raises(ValueError, match=field_name):
        ImpedanceGains(**{field_name: bad})


def test_negative_translational_stiffness_message():
    with pytest.raises(ValueError, match=r"ImpedanceGains\.translational_stiffness"):
        ImpedanceGains(translational_stiffness=(-100.0, 2000.0, 2000.0))


@pytest.mark.parametrize("bad", [0.0, -0.5, np.nan, np.inf])
def test_damping_ratio_validation(bad):
    with pytest.raises(ValueError, match="damping_ratio"):
        ImpedanceGains(damping_ratio=bad)


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_nullspace_stiffness_validation(bad):
    with pytest.raises(ValueError, match="nullspace_stiffness"):
        ImpedanceGains(nullspace_stiffness=bad)


def test_zero_nullspace_stiffness_is_allowed():
    assert ImpedanceGains(nullspace_stiffness=0.0).nullspace_damping == 0.0


@pytest.mark.parametrize(
    "bad", [(87.0, -1.0, 87.0, 87.0, 12.0, 12.0, 12.0), (0.0,) * 7, (np.nan,) * 7, ((1.0, 2.0),)]
)
def test_torque_limits_validation(bad):
    with pytest.raises(ValueError, match="torque_limits"):
        ImpedanceGains(torque_limits=bad)


def test_torque_limits_must_match_posture_length():
    with pytest.raises(ValueError, match="torque_limits"):
        CartesianImpedanceLaw(ImpedanceGains(torque_limits=(10.0,) * 6), np.zeros(7))


def test_gains_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ImpedanceGains().damping_ratio = 2.0  # type: ignore[misc]


def test_scaled_scales_all_stiffnesses_only():
    base = ImpedanceGains(
        translational_stiffness=(1000.0, 1500.0, 2000.0),
        rotational_stiffness=(50.0, 60.0, 70.0),
        damping_ratio=0.8,
        nullspace_stiffness=4.0,
        max_position_error=(0.01, 0.02, 0.03),
        max_rotation_error=(0.1, 0.2, 0.3),
        torque_limits=(50.0,) * 7,
    )
    for scale in (0.25, 0.5, 1.0, 2.0):
        s = base.scaled(scale)
        np.testing.assert_allclose(s.translational_stiffness, np.array(base.translational_stiffness) * scale)
        np.testing.assert_allclose(s.rotational_stiffness, np.array(base.rotational_stiffness) * scale)
        np.testing.assert_allclose(s.stiffness, base.stiffness * scale)
        np.testing.assert_allclose(s.nullspace_stiffness, base.nullspace_stiffness * scale)
        # Damping follows the stiffness at the same ratio.
        assert s.damping_ratio == base.damping_ratio
        np.testing.assert_allclose(s.damping, base.damping * np.sqrt(scale))
        np.testing.assert_allclose(s.nullspace_damping, base.nullspace_damping * np.sqrt(scale))
        assert s.max_position_error == base.max_position_error
        assert s.max_rotation_error == base.max_rotation_error
        assert s.torque_limits == base.torque_limits
    assert base.scaled(1.0) == base
    with pytest.raises(ValueError, match="translational_stiffness"):
        base.scaled(0.0)
    with pytest.raises(ValueError):
        base.scaled(-1.0)


# -- pose error and clipping -------------------------------------------------------------------------


def test_pose_error_unclipped_is_target_minus_current():
    rng = np.random.default_rng(0)
    law = _law(rng=rng)
    for _ in range(50):
        state = _random_state(rng)
        target_pos, target_rot = _near_target(rng, state, law.gains)
        error = law.pose_error(state, target_pos, target_rot)
        np.testing.assert_allclose(error[:3], target_pos - state.position, atol=1e-12)
        np.testing.assert_allclose(exp_map(error[3:]) @ state.rotation, target_rot, atol=1e-9)


def test_pose_error_is_clipped_per_axis():
    rng = np.random.default_rng(1)
    gains = ImpedanceGains(
        max_position_error=(0.01, 0.02, 0.03), max_rotation_error=(0.1, 0.2, 0.3), torque_limits=BIG_LIMITS
    )
    law = _law(gains, rng)
    max_error = gains.max_error
    for _ in range(100):
        state = _random_state(rng)
        target_pos = state.position + rng.normal(size=3) * rng.choice([1e-3, 1.0, 1e3])
        target_rot = _random_rotation(rng)
        error = law.pose_error(state, target_pos, target_rot)
        raw = np.r_[target_pos - state.position, rotation_error(target_rot, state.rotation)]
        np.testing.assert_allclose(error, np.clip(raw, -max_error, max_error), atol=1e-12)
        assert np.all(np.abs(error) <= max_error + 1e-15)


def test_target_one_metre_away_gives_force_k_times_clip():
    rng = np.random.default_rng(2)
    gains = ImpedanceGains(
        translational_stiffness=(1000.0, 2000.0, 3000.0),
        rotational_stiffness=(30.0, 40.0, 50.0),
        max_position_error=(0.01, 0.02, 0.03),
        max_rotation_error=(0.1, 0.2, 0.3),
        torque_limits=BIG_LIMITS,
    )
    for _ in range(20):
        posture = rng.uniform(-1.0, 1.0, 7)
        law = CartesianImpedanceLaw(gains, posture)
        # q at the posture and dq = 0: no posture or damping torque.
        state = dataclasses.replace(_random_state(rng), q=posture.copy(), dq=np.zeros(7))
        direction = rng.choice([-1.0, 1.0], 3) * rng.uniform(0.3, 1.0, 3)  # every axis beyond its clip
        direction /= np.linalg.norm(direction)
        target_pos = state.position + direction  # 1 m away
        target_rot = exp_map(np.array([3.0, -3.0, 3.0]) / np.sqrt(3.0)) @ state.rotation  # 3 rad away
        tau = law.torque(state, target_pos, target_rot)
        # Recover the task-space wrench from tau = J^T F.
        wrench = np.linalg.lstsq(state.jacobian.T, tau, rcond=None)[0]
        clip_pos = np.sign(direction) * np.asarray(gains.max_position_error)
        np.testing.assert_allclose(
            wrench[:3], np.asarray(gains.translational_stiffness) * clip_pos, rtol=1e-9
        )
        np.testing.assert_allclose(
            wrench[3:],
            np.asarray(gains.rotational_stiffness) * np.array([1, -1, 1]) * gains.max_rotation_error,
            rtol=1e-9,
        )
        # Ten times further away: the same force.
        further = law.torque(state, state.position + 10 * direction, target_rot)
        np.testing.assert_allclose(further, tau, rtol=1e-12)


# -- torque limits -----------------------------------------------------------------------------------


def test_torque_never_exceeds_limits_with_huge_stiffness():
    rng = np.random.default_rng(3)
    gains = ImpedanceGains(
        translational_stiffness=(1e7,) * 3,
        rotational_stiffness=(1e6,) * 3,
        nullspace_stiffness=1e5,
        max_position_error=(1.0,) * 3,
        max_rotation_error=(3.0,) * 3,
    )
    limits = np.asarray(PANDA_TORQUE_LIMITS)
    saturated = 0
    for _ in range(100):
        law = CartesianImpedanceLaw(gains, rng.uniform(-2.0, 2.0, 7))
        state = _random_state(rng, dq_scale=rng.choice([0.0, 1.0, 100.0]))
        tau = law.torque(state, state.position + rng.normal(size=3), _random_rotation(rng))
        assert np.all(np.isfinite(tau))
        assert np.all(np.abs(tau) <= limits)
        saturated += int(np.sum(np.isclose(np.abs(tau), limits)))
    assert saturated > 0  # the limits were actually exercised


def test_torque_within_limits_is_not_clipped():
    rng = np.random.default_rng(4)
    gains = ImpedanceGains(torque_limits=(5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0))
    law = CartesianImpedanceLaw(gains, np.zeros(7))
    unclipped = CartesianImpedanceLaw(dataclasses.replace(gains, torque_limits=BIG_LIMITS), np.zeros(7))
    for _ in range(50):
        state = _random_state(rng)
        target = _near_target(rng, state, gains)
        raw = unclipped.torque(state, *target)
        np.testing.assert_allclose(
            law.torque(state, *target), np.clip(raw, -np.asarray(gains.torque_limits), gains.torque_limits)
        )


# -- the law itself ----------------------------------------------------------------------------------


def test_torque_matches_formula():
    rng = np.random.default_rng(5)
    gains = ImpedanceGains(damping_ratio=0.7, nullspace_stiffness=3.0, torque_limits=BIG_LIMITS)
    for _ in range(30):
        posture = rng.uniform(-1.0, 1.0, 7)
        law = CartesianImpedanceLaw(gains, posture)
        state = _random_state(rng)
        target = _near_target(rng, state, gains)
        jac = state.jacobian
        error = law.pose_error(state, *target)
        wrench = gains.stiffness * error - gains.damping * (jac @ state.dq)
        null_proj = np.eye(7) - np.linalg.pinv(jac) @ jac
        posture_torque = gains.nullspace_stiffness * (posture - state.q) - gains.nullspace_damping * state.dq
        expected = jac.T @ wrench + null_proj @ posture_torque
        np.testing.assert_allclose(law.torque(state, *target), expected, rtol=1e-9, atol=1e-9)


def test_at_target_and_at_rest_torque_is_posture_only():
    rng = np.random.default_rng(6)
    law = _law(rng=rng)
    state = dataclasses.replace(_random_state(rng), dq=np.zeros(7), q=law.nullspace_posture.copy())
    np.testing.assert_allclose(law.torque(state, state.position, state.rotation), np.zeros(7), atol=1e-12)


def test_nullspace_term_produces_no_task_space_wrench():
    rng = np.random.default_rng(7)
    for _ in range(50):
        posture = rng.uniform(-2.0, 2.0, 7)
        gains = ImpedanceGains(nullspace_stiffness=20.0, torque_limits=BIG_LIMITS)
        with_null = CartesianImpedanceLaw(gains, posture)
        without = CartesianImpedanceLaw(dataclasses.replace(gains, nullspace_stiffness=0.0), posture)
        state = _random_state(rng)
        target = _near_target(rng, state, with_null.gains)
        diff = with_null.torque(state, *target) - without.torque(state, *target)
        jac = state.jacobian
        # The difference is the projected posture torque ...
        null_proj = np.eye(7) - np.linalg.pinv(jac) @ jac
        posture_torque = 20.0 * (posture - state.q) - with_null.gains.nullspace_damping * state.dq
        np.testing.assert_allclose(diff, null_proj @ posture_torque, atol=1e-9)
        assert np.linalg.norm(diff) > 1e-3
        # ... and maps to no end-effector wrench: F = pinv(J)^T tau, and J N = 0.
        wrench = np.linalg.pinv(jac).T @ diff
        np.testing.assert_allclose(wrench, np.zeros(6), atol=1e-9 * np.linalg.norm(diff))
        np.testing.assert_allclose(jac @ null_proj, np.zeros((6, 7)), atol=1e-10)


# -- linearisation -----------------------------------------------------------------------------------


def _check_linearization_matches(law, state, target):
    lin = law.linearize(state, *target)
    assert isinstance(lin, Linearization)
    assert lin.rows.shape == (7, 7)
    assert lin.setpoints.shape == lin.stiffness.shape == lin.damping.shape == (7,)
    # The last row spans null(J), unit length.
    np.testing.assert_allclose(state.jacobian @ lin.rows[-1], np.zeros(6), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(lin.rows[-1]), 1.0, atol=1e-12)
    expected = law.torque(state, *target)
    assert np.all(np.abs(expected) < np.asarray(law.gains.torque_limits))  # limits not hit
    np.testing.assert_allclose(lin.torque(state.q, state.dq), expected, rtol=1e-8, atol=1e-8)
    return lin


def test_linearization_matches_torque_at_linearisation_point():
    rng = np.random.default_rng(8)
    for _ in range(50):
        law = _law(rng=rng)
        state = _random_state(rng)
        _check_linearization_matches(law, state, _near_target(rng, state, law.gains))


def test_linearization_matches_with_clipped_error_and_default_limits():
    rng = np.random.default_rng(9)
    gains = ImpedanceGains(translational_stiffness=(200.0,) * 3, rotational_stiffness=(10.0,) * 3)
    checked = 0
    for _ in range(50):
        law = CartesianImpedanceLaw(gains, rng.uniform(-1.0, 1.0, 7))
        state = _random_state(rng, dq_scale=0.05)
        target = (state.position + rng.normal(size=3), _random_rotation(rng))  # far: clipped error
        if np.any(np.abs(law.torque(state, *target)) >= np.asarray(gains.torque_limits)):
            continue
        _check_linearization_matches(law, state, target)
        checked += 1
    assert checked >= 15


def test_linearization_along_a_trajectory_and_after_a_jump():
    """Repeated calls on one law (the nullspace direction may be warm-started from the last one),
    along a smoothly changing Jacobian, then an unrelated Jacobian, then a sign-flipped one."""
    rng = np.random.default_rng(10)
    law = _law(rng=rng)
    state = _random_state(rng)
    drift = rng.normal(size=(6, 7)) * 0.01
    for step in range(30):
        state = dataclasses.replace(state, jacobian=state.jacobian + drift, q=state.q + 0.01)
        _check_linearization_matches(law, state, _near_target(rng, state, law.gains))
    for _ in range(10):
        state = _random_state(rng)
        _check_linearization_matches(law, state, _near_target(rng, state, law.gains))
        _check_linearization_matches(
            law, dataclasses.replace(state, jacobian=-state.jacobian), _near_target(rng, state, law.gains)
        )


def test_linearization_is_exact_in_dq_and_q_along_jacobian_rows():
    """Away from the linearisation point, the spring-dampers act on rows @ q and rows @ dq only."""
    rng = np.random.default_rng(11)
    law = _law(rng=rng)
    state = _random_state(rng)
    lin = law.linearize(state, *_near_target(rng, state, law.gains))
    for _ in range(10):
        dq, q = rng.normal(size=7), rng.normal(size=7)
        force = lin.stiffness * (lin.setpoints - lin.rows @ q) - lin.damping * (lin.rows @ dq)
        np.testing.assert_allclose(lin.torque(q, dq), lin.rows.T @ force)
    # Damping changes the torque by exactly -rows^T D rows ddq.
    ddq = rng.normal(size=7)
    np.testing.assert_allclose(
        lin.torque(state.q, state.dq + ddq) - lin.torque(state.q, state.dq),
        -lin.rows.T @ (lin.damping * (lin.rows @ ddq)),
        atol=1e-9,
    )
    np.testing.assert_allclose(lin.stiffness, np.append(law.gains.stiffness, law.gains.nullspace_stiffness))
    np.testing.assert_allclose(lin.damping, np.append(law.gains.damping, law.gains.nullspace_damping))
