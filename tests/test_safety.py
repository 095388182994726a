"""Safety filter: every limit is attacked with commands that try to get around it."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.rotations import angle_between, exp_map, log_map
from controllers.safety import EE_DOWN, SafetyFilter, SafetyLimits, SafetyStatus

REF = np.array(EE_DOWN).reshape(3, 3)
CENTER = np.array([0.5, 0.0, 0.2])
LOOSE_ORIENTATION = (np.pi, np.pi, np.pi)  # orientation box that never clips
BIG_BOX = dict(workspace_low=(-100.0, -100.0, -100.0), workspace_high=(100.0, 100.0, 100.0))


def _unit(rng):
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _filter(limits=None, position=CENTER, rotation=REF, now=0.0):
    f = SafetyFilter(SafetyLimits() if limits is None else limits)
    f.reset(position, rotation, now)
    return f


def _out(f, now, position=CENTER, rotation=REF):
    return f.output(now, position, rotation)


def _inside(limits, position, tol=0.0):
    return np.all(position >= np.asarray(limits.workspace_low) - tol) and np.all(
        position <= np.asarray(limits.workspace_high) + tol
    )


def _assert_rotation(rot):
    assert np.all(np.isfinite(rot))
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rot) > 0


def _deviation(limits, rot):
    return log_map(rot @ np.asarray(limits.reference_rotation).reshape(3, 3).T)


# -- lifecycle -------------------------------------------------------------------------------------------


def test_submit_and_output_before_reset_raise():
    f = SafetyFilter(SafetyLimits())
    with pytest.raises(RuntimeError, match="reset"):
        f.submit(CENTER, REF, 0.0)
    with pytest.raises(RuntimeError, match="reset"):
        f.output(0.0, CENTER, REF)
    f.engage_estop(CENTER, REF)  # an e-stop does not count as a reset either
    with pytest.raises(RuntimeError, match="reset"):
        f.output(0.0, CENTER, REF)


def test_reset_outputs_the_measured_pose_and_an_arm_far_outside_the_box_is_not_moved():
    limits = SafetyLimits()
    f = _filter(limits)
    pos, rot, status = _out(f, 0.0)
    np.testing.assert_allclose(pos, CENTER)
    np.testing.assert_allclose(rot, REF)
    assert not status.modified
    # Hole: the start-up pose was clipped into the box, commanding an arm outside it to jump. Now the
    # output is where the arm is ("stay"), and commands are refused until the operator jogs it in.
    outside = np.array([2.0, -2.0, -1.0])
    assert f.reset(outside, REF, 1.0).outside_workspace
    pos, _, _ = _out(f, 1.0, outside)
    np.testing.assert_allclose(pos, outside)
    status = f.submit(CENTER, REF, 1.1, measured_position=outside)
    assert status.outside_workspace and status.rejected
    np.testing.assert_allclose(_out(f, 1.1, outside)[0], outside)
    # The output is a copy: mutating it does not move the target.
    pos[:] = 123.0
    np.testing.assert_allclose(_out(f, 1.1, outside)[0], outside)


def test_startup_20cm_above_the_box_is_not_commanded_20cm_in_one_tick():
    limits = SafetyLimits()
    above = np.array([0.5, 0.0, limits.workspace_high[2] + 0.2])
    f = _filter(limits, position=above)
    t, previous = 0.0, above
    for _ in range(10):  # neither commands nor the watchdog move it
        t += 0.1
        f.submit(CENTER, REF, t, measured_position=above)
        pos, _, _ = _out(f, t + 0.6, above)
        t += 0.6
        assert np.linalg.norm(pos - previous) == 0.0
    # Jogged in to within one step of the box: the next command brings it in, by at most one step.
    near = np.array([0.5, 0.0, limits.workspace_high[2] + 0.01])
    f.reset(near, REF, t + 1.0)
    status = f.submit(CENTER, REF, t + 1.1, measured_position=near)
    assert not status.rejected
    pos, _, _ = _out(f, t + 1.1, near)
    assert _inside(limits, pos)
    assert np.linalg.norm(pos - near) <= limits.max_translation_per_command + 1e-12


def test_command_inside_all_limits_passes_unchanged():
    f = _filter()
    target = CENTER + np.array([0.01, -0.02, 0.01])
    target_rot = exp_map(np.array([0.05, -0.05, 0.1])) @ REF
    status = f.submit(target, target_rot, 0.1, measured_position=CENTER)
    assert status == SafetyStatus() and not status.modified
    pos, rot, out_status = _out(f, 0.1)
    np.testing.assert_allclose(pos, target, atol=1e-12)
    np.testing.assert_allclose(rot, target_rot, atol=1e-9)
    assert not out_status.modified


# -- 1. non-finite and malformed targets -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_position_rejected_previous_target_kept(bad):
    f = _filter()
    good = CENTER + np.array([0.01, 0.0, 0.0])
    f.submit(good, REF, 0.1)
    for axis in range(3):
        position = good.copy()
        position[axis] = bad
        status = f.submit(position, REF, 0.2 + 0.01 * axis)
        assert status.rejected_nonfinite
        assert not (status.step_limited or status.rate_limited or status.workspace_clipped)
        pos, rot, _ = _out(f, 0.2 + 0.01 * axis)
        np.testing.assert_allclose(pos, good)
        np.testing.assert_allclose(rot, REF)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_rotation_rejected_previous_target_kept(bad):
    f = _filter()
    good_rot = exp_map(np.array([0.0, 0.0, 0.1])) @ REF
    f.submit(CENTER, good_rot, 0.1)
    for i in range(9):
        rotation = good_rot.copy()
        rotation.flat[i] = bad
        assert f.submit(CENTER, rotation, 0.2).rejected_nonfinite
        pos, rot, _ = _out(f, 0.2)
        np.testing.assert_allclose(pos, CENTER)
        np.testing.assert_allclose(rot, good_rot, atol=1e-12)


@pytest.mark.parametrize(
    "position, rotation",
    [
        (np.zeros(2), REF),
        (np.zeros(4), REF),
        (np.zeros((3, 1)), REF),
        (CENTER, np.eye(4)),
        (CENTER, REF.reshape(-1)),
    ],
    ids=["pos2", "pos4", "pos3x1", "rot4x4", "rot9"],
)
def test_wrong_shapes_rejected(position, rotation):
    f = _filter()
    assert f.submit(position, rotation, 0.1).rejected_nonfinite
    np.testing.assert_allclose(_out(f, 0.1)[0], CENTER)


@pytest.mark.parametrize(
    "rotation",
    [
        -REF,  # det -1; used to turn every later target into NaN
        -np.eye(3),
        np.zeros((3, 3)),
        2.0 * REF,
        np.diag([1.0, 1.0, -1.0]) @ REF,  # reflection
        np.full((3, 3), 1e308),
        np.array([[0.0, 1e308, 0.0], [-1e308, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        REF + 1e-2,
    ],
    ids=["minus_ref", "minus_eye", "zeros", "scaled", "reflection", "huge", "huge_antisym", "perturbed"],
)
def test_finite_non_rotation_matrices_rejected(rotation):
    f = _filter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        status = f.submit(CENTER + 0.01, rotation, 0.1)
    assert status.rejected_nonfinite
    pos, rot, _ = _out(f, 0.1)
    np.testing.assert_allclose(pos, CENTER)
    np.testing.assert_allclose(rot, REF)
    # The filter still works afterwards.
    f.submit(CENTER + 0.01, exp_map(np.array([0.1, 0.0, 0.0])) @ REF, 0.2)
    pos, rot, _ = _out(f, 0.2)
    np.testing.assert_allclose(pos, CENTER + 0.01)
    _assert_rotation(rot)


def test_slightly_non_orthonormal_rotation_accepted():
    # float32 round-off in a measured or commanded rotation must not be rejected.
    f = _filter()
    rot = (exp_map(np.array([0.1, 0.0, 0.0])) @ REF).astype(np.float32)
    assert not f.submit(CENTER, rot, 0.1).rejected_nonfinite
    _assert_rotation(_out(f, 0.1)[1])


def test_rejected_commands_do_not_feed_the_watchdog():
    limits = SafetyLimits()
    f = _filter(limits)
    f.submit(CENTER + 0.01, REF, 0.1)
    t = 0.1
    while t < 0.1 + limits.command_timeout_s + 0.1:
        t += 0.01
        f.submit(np.full(3, np.nan), REF, t)
    measured = CENTER + np.array([0.0, 0.02, 0.0])
    pos, _, status = _out(f, t, measured)
    assert status.stale_hold
    np.testing.assert_allclose(pos, measured)


# -- 2. step limit -----------------------------------------------------------------------------------------


def test_step_limit_translation_one_metre_command():
    rng = np.random.default_rng(0)
    limits = SafetyLimits(**BIG_BOX, max_orientation_deviation=LOOSE_ORIENTATION)
    for _ in range(50):
        f = _filter(limits)
        direction = _unit(rng)
        status = f.submit(CENTER + direction, REF, 1.0)  # first command: no rate limit
        assert status.step_limited and not status.rate_limited
        pos, _, _ = _out(f, 1.0)
        np.testing.assert_allclose(pos, CENTER + direction * limits.max_translation_per_command, atol=1e-12)
        # Repeated, it keeps moving at most one step per command, even with a long time in between.
        previous = pos
        for k in range(1, 5):
            f.submit(CENTER + direction, REF, 1.0 + 0.4 * k)
            pos, _, _ = _out(f, 1.0 + 0.4 * k)
            assert np.linalg.norm(pos - previous) <= limits.max_translation_per_command + 1e-12
            previous = pos


def test_step_limit_rotation():
    rng = np.random.default_rng(1)
    limits = SafetyLimits(max_orientation_deviation=LOOSE_ORIENTATION)
    for _ in range(50):
        f = _filter(limits)
        axis = _unit(rng)
        target = exp_map(axis * rng.uniform(0.5, np.pi - 0.01)) @ REF
        status = f.submit(CENTER, target, 1.0)
        assert status.step_limited and not status.rate_limited
        _, rot, _ = _out(f, 1.0)
        _assert_rotation(rot)
        np.testing.assert_allclose(angle_between(rot, REF), limits.max_rotation_per_command, atol=1e-9)
        # It moved along the commanded axis.
        np.testing.assert_allclose(rot, exp_map(axis * limits.max_rotation_per_command) @ REF, atol=1e-9)


def test_small_step_is_not_step_limited():
    limits = SafetyLimits()
    f = _filter(limits)
    status = f.submit(CENTER + np.array([0.0, 0.0, 0.9 * limits.max_translation_per_command]), REF, 1.0)
    assert not status.step_limited


# -- 2. rate limit -----------------------------------------------------------------------------------------


def test_rate_limit_two_commands_one_millisecond_apart():
    rng = np.random.default_rng(2)
    limits = SafetyLimits(**BIG_BOX, max_orientation_deviation=LOOSE_ORIENTATION)
    dt = 1e-3
    for _ in range(30):
        f = _filter(limits)
        f.submit(CENTER, REF, 1.0)
        direction = _unit(rng)
        axis = _unit(rng)
        status = f.submit(CENTER + direction, exp_map(axis * 2.0) @ REF, 1.0 + dt)
        assert status.rate_limited or status.step_limited  # this command exceeds both
        pos, rot, _ = _out(f, 1.0 + dt)
        np.testing.assert_allclose(np.linalg.norm(pos - CENTER), limits.max_linear_speed * dt, rtol=1e-6)
        np.testing.assert_allclose(pos, CENTER + direction * limits.max_linear_speed * dt, atol=1e-9)
        np.testing.assert_allclose(angle_between(rot, REF), limits.max_angular_speed * dt, rtol=1e-5)


def test_rate_limit_flags():
    limits = SafetyLimits()
    f = _filter(limits)
    f.submit(CENTER, REF, 1.0)
    # 4 cm after 10 ms: within the step limit but far beyond 0.6 m/s.
    status = f.submit(CENTER + np.array([0.04, 0.0, 0.0]), REF, 1.01)
    assert status.rate_limited and not status.step_limited
    expected = CENTER + np.array([limits.max_linear_speed * 0.01, 0.0, 0.0])
    np.testing.assert_allclose(_out(f, 1.01)[0], expected)


@pytest.mark.parametrize("dt", [0.0, -0.5])
def test_same_or_earlier_timestamp_does_not_move(dt):
    f = _filter()
    f.submit(CENTER, REF, 1.0)
    status = f.submit(CENTER + 0.03, exp_map(np.array([0.2, 0.0, 0.0])) @ REF, 1.0 + dt)
    assert status.rejected_clock == (dt < 0)
    pos, rot, _ = _out(f, 1.0)
    np.testing.assert_allclose(pos, CENTER)
    np.testing.assert_allclose(rot, REF, atol=1e-12)


def test_rate_limit_holds_over_many_fast_commands():
    rng = np.random.default_rng(3)
    limits = SafetyLimits()
    f = _filter(limits)
    f.submit(CENTER, REF, 0.0)
    t, previous = 0.0, CENTER
    start = previous
    for _ in range(200):
        dt = rng.uniform(1e-4, 2e-3)
        t += dt
        f.submit(CENTER + rng.normal(size=3), REF, t)
        pos, _, _ = _out(f, t)
        assert np.linalg.norm(pos - previous) <= limits.max_linear_speed * dt + 1e-12
        previous = pos
    assert np.linalg.norm(previous - start) <= limits.max_linear_speed * t + 1e-9


# -- 3. workspace box --------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_workspace_box_every_face(axis, sign):
    limits = SafetyLimits()
    low, high = np.asarray(limits.workspace_low), np.asarray(limits.workspace_high)
    f = _filter(limits)
    target = CENTER.copy()
    target[axis] += sign * 10.0  # far outside this face
    t = 0.0
    clipped = False
    for _ in range(40):
        t += 0.1
        clipped |= f.submit(target, REF, t).workspace_clipped
        pos, _, _ = _out(f, t)
        assert _inside(limits, pos)
    assert clipped
    np.testing.assert_allclose(pos[axis], high[axis] if sign > 0 else low[axis])
    other = [i for i in range(3) if i != axis]
    np.testing.assert_allclose(pos[other], CENTER[other])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # |1e300 * u| overflows to inf
def test_workspace_box_random_directions_far_outside():
    rng = np.random.default_rng(4)
    limits = SafetyLimits()
    f = _filter(limits)
    t = 0.0
    for _ in range(300):
        t += 0.1
        target = CENTER + _unit(rng) * rng.choice([1.0, 1e3, 1e150, 1e300])
        f.submit(target, REF, t)
        pos, _, _ = _out(f, t)
        assert np.all(np.isfinite(pos))
        assert _inside(limits, pos)


def test_workspace_box_corners_reachable_not_exceedable():
    limits = SafetyLimits(max_translation_per_command=0.2, max_linear_speed=10.0)
    low, high = np.asarray(limits.workspace_low), np.asarray(limits.workspace_high)
    for corner in np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).T.reshape(-1, 3):
        f = _filter(limits)
        direction = np.where(corner, 1.0, -1.0)
        for k in range(20):
            f.submit(CENTER + 5.0 * direction, REF, 0.1 * (k + 1))
        pos, _, _ = _out(f, 2.0)
        np.testing.assert_allclose(pos, np.where(corner, high, low))


def test_contains():
    limits = SafetyLimits()
    assert limits.contains(CENTER)
    assert limits.contains(np.asarray(limits.workspace_low))
    assert not limits.contains(np.asarray(limits.workspace_high) + 1e-9)


# -- 3. orientation box ------------------------------------------------------------------------------------


def test_orientation_box_clips_far_rotations():
    rng = np.random.default_rng(5)
    limits = SafetyLimits()
    max_dev = np.asarray(limits.max_orientation_deviation)
    f = _filter(limits)
    t = 0.0
    clipped = 0
    for _ in range(60):
        target = exp_map(_unit(rng) * rng.uniform(1.0, np.pi)) @ REF
        for _ in range(5):  # several commands to get past the step limit
            t += 0.2
            clipped += f.submit(CENTER, target, t).orientation_clipped
            _, rot, _ = _out(f, t)
            _assert_rotation(rot)
            assert np.all(np.abs(_deviation(limits, rot)) <= max_dev + 1e-4)
    assert clipped > 0


def test_orientation_box_about_a_custom_reference():
    rng = np.random.default_rng(6)
    ref = exp_map(np.array([0.3, -1.0, 2.0]))
    limits = SafetyLimits(
        reference_rotation=tuple(ref.reshape(-1)),
        max_orientation_deviation=(0.1, 0.2, 0.3),
        max_rotation_per_command=1.0,
        max_angular_speed=100.0,
    )
    max_dev = np.asarray(limits.max_orientation_deviation)
    for _ in range(40):
        f = _filter(limits, rotation=ref)
        axis_target = exp_map(_unit(rng) * 3.0) @ ref
        for k in range(6):
            f.submit(CENTER, axis_target, 0.1 * (k + 1))
        _, rot, _ = _out(f, 1.0)
        _assert_rotation(rot)
        dev = log_map(rot @ ref.T)
        assert np.all(np.abs(dev) <= max_dev + 1e-4)
        assert np.any(np.isclose(np.abs(dev), max_dev, atol=1e-4))  # pinned to the box boundary


def test_arm_rotated_1_rad_off_is_held_not_turned_0_4_rad_in_one_tick():
    limits = SafetyLimits()  # 0.6 rad about x at most
    far = exp_map(np.array([1.0, 0.0, 0.0])) @ REF
    f = _filter(limits, rotation=far)
    _, rot, _ = _out(f, 0.0, rotation=far)
    np.testing.assert_allclose(rot, far)  # was clipped to 0.6 rad: a 0.4 rad jump
    assert f.submit(CENTER, REF, 0.1, measured_position=CENTER).outside_workspace
    pos, rot, status = _out(f, 0.7, rotation=far)  # stale: the hold is where the arm is
    assert status.stale_hold
    np.testing.assert_allclose(rot, far)
    # Within one rotation step of the box, a command brings the orientation in, by at most that step.
    near = exp_map(np.array([0.7, 0.0, 0.0])) @ REF
    f.reset(CENTER, near, 1.0)
    assert not f.submit(CENTER, REF, 1.1).rejected
    _, rot, _ = _out(f, 1.1, rotation=near)
    assert angle_between(rot, near) <= limits.max_rotation_per_command + 1e-9
    assert np.all(np.abs(_deviation(limits, rot)) <= np.asarray(limits.max_orientation_deviation) + 1e-9)


def test_rotation_within_box_passes_unchanged():
    limits = SafetyLimits()
    f = _filter(limits)
    target = exp_map(np.array([0.1, -0.1, 0.2])) @ REF
    status = f.submit(CENTER, target, 0.1)
    assert not status.orientation_clipped
    np.testing.assert_allclose(_out(f, 0.1)[1], target, atol=1e-9)


# -- 4. lead limit -----------------------------------------------------------------------------------------


def test_lead_limit_blocked_arm_does_not_wind_up():
    limits = SafetyLimits()
    f = _filter(limits)
    measured = CENTER.copy()  # the arm is blocked: it never moves
    t = 0.0
    flagged = False
    for _ in range(20):
        t += 0.1
        pos, _, _ = _out(f, t, measured)
        flagged |= f.submit(pos + np.array([0.04, 0.0, 0.0]), REF, t, measured_position=measured).lead_limited
        pos, _, _ = _out(f, t, measured)
        assert np.linalg.norm(pos - measured) <= limits.max_target_lead + 1e-12
    assert flagged
    np.testing.assert_allclose(pos, measured + np.array([limits.max_target_lead, 0.0, 0.0]), atol=1e-12)


def test_lead_limit_never_makes_a_step_bigger_than_the_step_limit():
    # Hole: the lead limit ran after the step limit; with the arm 0.3 m from the target one command moved
    # the target 0.24 m. Now the lead limit picks the goal and the step limit has the last word.
    limits = SafetyLimits(**BIG_BOX)
    f = _filter(limits)
    measured = CENTER + np.array([0.3, 0.0, 0.0])
    f._measured = None  # the arm really is there (tested: a jump is refused, below)
    status = f.submit(CENTER, REF, 0.1, measured_position=measured)
    pos, _, _ = _out(f, 0.1, measured)
    assert status.lead_limited and status.step_limited
    np.testing.assert_allclose(np.linalg.norm(pos - CENTER), limits.max_translation_per_command)
    rng = np.random.default_rng(7)
    for _ in range(100):
        f = _filter(limits)
        f._measured = None
        measured = CENTER + rng.normal(size=3) * 0.1
        f.submit(CENTER + rng.normal(size=3) * 0.05, REF, 0.1, measured_position=measured)
        pos, _, _ = _out(f, 0.1, measured)
        assert np.linalg.norm(pos - CENTER) <= limits.max_translation_per_command + 1e-12
        # ... towards the lead ball: never further from the measured position than it was
        assert np.linalg.norm(pos - measured) <= max(np.linalg.norm(CENTER - measured), limits.max_target_lead) + 1e-12


@pytest.mark.parametrize("measured", [np.array([np.nan, 0.0, 0.2]), np.array([np.inf, 0.0, 0.2]),
                                      CENTER + np.array([0.3, 0.0, 0.0])])
def test_a_bad_or_jumping_measured_position_does_not_pull_the_target(measured):
    # Hole: a non-finite measurement, or one that jumped 0.3 m in 0.1 s, pulled the target with it.
    limits = SafetyLimits(**BIG_BOX)
    f = _filter(limits)
    f.submit(CENTER, REF, 0.0, measured_position=CENTER)
    status = f.submit(CENTER + 0.01, REF, 0.1, measured_position=measured)
    assert status.rejected_measurement and status.rejected
    np.testing.assert_allclose(_out(f, 0.1, measured)[0], CENTER)
    # Nor does a watchdog hold go there: the hold is the last output.
    pos, _, status = _out(f, 0.1 + 2 * limits.command_timeout_s, measured)
    assert status.stale_hold
    np.testing.assert_allclose(pos, CENTER)
    if np.all(np.isfinite(measured)):  # a jump latches a fault: holding, even once it looks plausible
        later = 0.1 + 10.0
        assert f.submit(CENTER + 0.01, REF, later, measured_position=measured).rejected_measurement
        pos, _, status = _out(f, later, measured)
        assert status.stale_hold and status.rejected_measurement
        np.testing.assert_allclose(pos, CENTER)
        f.reset(measured, REF, later + 0.1)  # until a reset (the operator) takes the new measurement
    else:  # a dropped-out sensor that comes back resumes
        later = 0.1 + 10.0
    assert not f.submit(measured + 0.01 if np.all(np.isfinite(measured)) else CENTER + 0.01, REF, later + 0.2,
                        measured_position=measured if np.all(np.isfinite(measured)) else CENTER).rejected
    # The same distance covered at a plausible speed is accepted.
    f = _filter(limits)
    f.submit(CENTER, REF, 0.0, measured_position=CENTER)
    slowly = 0.3 / limits.max_measured_speed + 0.05
    assert not f.submit(CENTER + np.array([0.3, 0.0, 0.01]), REF, slowly,
                        measured_position=CENTER + np.array([0.3, 0.0, 0.0])).rejected


def test_no_lead_limit_without_measured_position():
    limits = SafetyLimits()
    f = _filter(limits)
    status = f.submit(CENTER + np.array([0.0, 0.04, 0.0]), REF, 0.1)
    assert not status.lead_limited
    np.testing.assert_allclose(_out(f, 0.1)[0], CENTER + np.array([0.0, 0.04, 0.0]))


# -- 5. stale-command watchdog -----------------------------------------------------------------------------


def test_stale_command_watchdog_holds_measured_pose():
    limits = SafetyLimits()
    f = _filter(limits)
    target = CENTER + np.array([0.03, 0.0, 0.0])
    f.submit(target, REF, 1.0)
    pos, _, status = _out(f, 1.0 + 0.9 * limits.command_timeout_s)
    np.testing.assert_allclose(pos, target)
    assert not status.stale_hold
    measured = CENTER + np.array([0.01, 0.01, 0.0])
    measured_rot = exp_map(np.array([0.0, 0.0, 0.2])) @ REF
    t = 1.0 + limits.command_timeout_s + 0.01
    pos, rot, status = f.output(t, measured, measured_rot)
    assert status.stale_hold
    np.testing.assert_allclose(pos, measured)
    np.testing.assert_allclose(rot, measured_rot)
    # The hold is latched: later measurements (the arm sagging) do not drag it along.
    pos, rot, status = f.output(t + 1.0, measured + 0.02, REF)
    assert status.stale_hold
    np.testing.assert_allclose(pos, measured)
    np.testing.assert_allclose(rot, measured_rot)
    # A new command resumes, step- and rate-limited from the hold, not from the old target.
    f.submit(measured + np.array([1.0, 0.0, 0.0]), measured_rot, t + 2.0)
    pos, _, status = f.output(t + 2.0, measured, measured_rot)
    assert not status.stale_hold
    np.testing.assert_allclose(pos, measured + np.array([limits.max_translation_per_command, 0.0, 0.0]))


def test_stale_hold_after_reset_without_commands_is_where_the_arm_is_even_outside_the_box():
    limits = SafetyLimits()
    f = _filter(limits, now=5.0)
    assert not _out(f, 5.0 + 0.5 * limits.command_timeout_s)[2].stale_hold
    pushed_out = np.array([limits.workspace_high[0] + 0.2, 0.0, 0.2])
    f._measured = None  # pushed there slowly (a jump is refused: tested above)
    pos, _, status = f.output(5.0 + 2 * limits.command_timeout_s, pushed_out, REF)
    assert status.stale_hold
    np.testing.assert_allclose(pos, pushed_out)  # "stay where you are", not a 0.2 m jump into the box


@pytest.mark.parametrize("bad_now", [np.nan, np.inf, -np.inf])
def test_a_non_finite_clock_does_not_disable_the_watchdog(bad_now):
    # Hole: one submit with now=NaN disabled the watchdog and the rate limit for good.
    limits = SafetyLimits()
    f = _filter(limits)
    status = f.submit(CENTER + 0.01, REF, bad_now)
    assert status.rejected_clock and status.rejected
    pos, _, status = _out(f, 1000.0)
    assert status.stale_hold
    np.testing.assert_allclose(pos, CENTER)
    # A non-finite clock on output holds too.
    f = _filter(limits)
    f.submit(CENTER + 0.01, REF, 0.1)
    measured = CENTER + 0.005
    pos, _, status = _out(f, bad_now, measured)
    assert status.stale_hold and status.rejected_clock
    np.testing.assert_allclose(pos, CENTER + 0.01)  # no trustworthy time: the measured pose is not adopted
    # Rate limit still works after the bad clock: 4 cm in 10 ms is cut to 6 mm.
    f = _filter(limits)
    f.submit(CENTER, REF, 1.0)
    f.submit(CENTER + 0.5, REF, bad_now)
    f.submit(CENTER + np.array([0.04, 0.0, 0.0]), REF, 1.01)
    np.testing.assert_allclose(_out(f, 1.01)[0], CENTER + np.array([limits.max_linear_speed * 0.01, 0.0, 0.0]))


def test_a_clock_that_runs_backwards_holds_until_reset():
    limits = SafetyLimits()
    f = _filter(limits)
    f.submit(CENTER + 0.01, REF, 1.0)
    # A forward jump of the clock and back: the watchdog must not be left waiting for 1e300.
    _out(f, 1e300)
    assert f.submit(CENTER + 0.02, REF, 1.1).rejected_clock
    pos, _, status = _out(f, 1.2)
    assert status.stale_hold and status.rejected_clock
    f.reset(CENTER, REF, 2.0)
    assert not f.submit(CENTER + 0.01, REF, 2.1).rejected


# -- 6. e-stop ---------------------------------------------------------------------------------------------


def test_estop_holds_engagement_pose_and_refuses_commands():
    limits = SafetyLimits()
    f = _filter(limits)
    f.submit(CENTER + 0.02, REF, 0.1)
    engaged_pos = CENTER + np.array([0.01, -0.01, 0.0])
    engaged_rot = exp_map(np.array([0.0, 0.1, 0.0])) @ REF
    f.engage_estop(engaged_pos, engaged_rot)
    assert f.estopped
    for k in range(5):
        t = 0.2 + k
        status = f.submit(CENTER + np.array([0.04, 0.0, 0.0]), REF, t)
        assert status.estop and not status.rejected_nonfinite
        # Whatever is measured now (and however long since the last command), hold the engagement pose.
        pos, rot, status = f.output(t + 10.0, CENTER + np.array([0.1, 0.1, 0.1]), REF)
        assert status.estop and not status.stale_hold
        np.testing.assert_allclose(pos, engaged_pos)
        np.testing.assert_allclose(rot, engaged_rot)
    # clear_estop resumes from the measured pose.
    measured = CENTER + np.array([0.0, 0.05, -0.05])
    f.clear_estop(measured, REF, 10.0)
    assert not f.estopped
    pos, rot, status = f.output(10.0, measured, REF)
    assert not status.modified
    np.testing.assert_allclose(pos, measured)
    np.testing.assert_allclose(rot, REF)
    status = f.submit(measured + np.array([0.02, 0.0, 0.0]), REF, 10.01)
    assert not status.estop
    # Rate limiting restarts with the first command after the clear.
    np.testing.assert_allclose(_out(f, 10.01)[0], measured + np.array([0.02, 0.0, 0.0]))


def test_estop_survives_reset():
    f = _filter()
    f.engage_estop(CENTER, REF)
    f.reset(CENTER + 0.05, REF, 1.0)  # e.g. an episode reset while the e-stop is pressed
    assert f.estopped
    pos, rot, status = _out(f, 1.0)  # used to raise AttributeError: reset dropped the hold pose
    assert status.estop
    np.testing.assert_allclose(pos, CENTER)
    np.testing.assert_allclose(rot, REF)
    assert f.submit(CENTER + 0.01, REF, 1.1).estop
    np.testing.assert_allclose(_out(f, 1.1)[0], CENTER)


def test_clear_estop_outside_the_box_stays_where_the_arm_is():
    limits = SafetyLimits()
    f = _filter(limits)
    f.engage_estop(np.array([1.0, 0.0, 0.2]), REF)
    np.testing.assert_allclose(_out(f, 0.1)[0], [1.0, 0.0, 0.2])  # the hold is where the arm is
    assert f.clear_estop(np.array([1.0, 0.0, 0.2]), REF, 0.2).outside_workspace
    np.testing.assert_allclose(_out(f, 0.2, np.array([1.0, 0.0, 0.2]))[0], [1.0, 0.0, 0.2])


def test_estop_before_the_first_measured_pose_holds_that_pose_not_the_origin():
    # Hole: an e-stop before the first measured pose latched a hold at (0, 0, 0) with identity rotation.
    f = SafetyFilter(SafetyLimits())
    f.engage_estop()
    assert f.estopped and not f.started
    with pytest.raises(RuntimeError, match="reset"):
        f.output(0.0, CENTER, REF)
    f.reset(CENTER, REF, 0.0)
    pos, rot, status = _out(f, 0.1)
    assert status.estop
    np.testing.assert_allclose(pos, CENTER)
    np.testing.assert_allclose(rot, REF)
    # A malformed pose given with the e-stop is not adopted either.
    f = _filter()
    f.engage_estop(np.zeros(3) * np.nan, np.eye(3))
    np.testing.assert_allclose(_out(f, 0.1)[0], CENTER)


@pytest.mark.parametrize("position, rotation", [(np.full(3, np.nan), REF), (CENTER, -REF), (CENTER[:2], REF)])
def test_reset_refuses_a_pose_that_is_not_a_measurement(position, rotation):
    f = SafetyFilter(SafetyLimits())
    with pytest.raises(ValueError, match="measured pose"):
        f.reset(position, rotation, 0.0)
    with pytest.raises(ValueError, match="finite time"):
        f.reset(CENTER, REF, np.nan)
    assert not f.started


# -- SafetyLimits validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(workspace_low=(0.5, -0.35, 0.0), workspace_high=(0.5, 0.35, 0.45)),  # equal on x
        dict(workspace_low=(0.25, 0.4, 0.0)),  # low > high on y
        dict(workspace_low=(0.25, -0.35, 1.0)),  # low > high on z
        dict(workspace_low=(0.25, -0.35)),
        dict(workspace_high=(0.75, 0.35, np.inf)),
        dict(workspace_low=(np.nan, -0.35, 0.0)),
    ],
)
def test_workspace_validation(kwargs):
    with pytest.raises(ValueError, match="workspace_low"):
        SafetyLimits(**kwargs)


@pytest.mark.parametrize(
    "ref",
    [
        tuple(2.0 * np.eye(3).reshape(-1)),
        tuple(np.ones(9)),
        tuple(np.eye(3).reshape(-1)[:8]),
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0),  # orthonormal but a reflection
        (np.nan,) * 9,
    ],
    ids=["scaled", "ones", "eight", "reflection", "nan"],
)
def test_reference_rotation_validation(ref):
    with pytest.raises(ValueError, match="reference_rotation"):
        SafetyLimits(reference_rotation=ref)


@pytest.mark.parametrize(
    "dev", [(0.0, 0.6, 1.6), (-0.1, 0.6, 1.6), (0.6, 0.6, 4.0), (0.6, 0.6), (np.nan, 0.6, 1.6)]
)
def test_orientation_deviation_validation(dev):
    with pytest.raises(ValueError, match="max_orientation_deviation"):
        SafetyLimits(max_orientation_deviation=dev)


@pytest.mark.parametrize(
    "name",
    [
        "max_translation_per_command",
        "max_rotation_per_command",
        "max_linear_speed",
        "max_angular_speed",
        "max_target_lead",
        "command_timeout_s",
    ],
)
@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_positive_limits_validation(name, bad):
    with pytest.raises(ValueError, match=name):
        SafetyLimits(**{name: bad})


def test_limits_are_frozen_and_valid_custom_limits_accepted():
    limits = SafetyLimits(
        reference_rotation=tuple(np.eye(3).reshape(-1)), max_orientation_deviation=(np.pi,) * 3
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_linear_speed = 1.0  # type: ignore[misc]


def test_status_modified():
    assert not SafetyStatus().modified
    for name in vars(SafetyStatus()):
        assert SafetyStatus(**{name: True}).modified


# -- property test -----------------------------------------------------------------------------------------

_coord = st.one_of(
    st.floats(-1.0, 2.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e300, -1e300, 1.7e308, -1.7e308, np.nan, np.inf, -np.inf]),
)
_rotation = st.one_of(
    st.tuples(st.floats(-10.0, 10.0), st.floats(-10.0, 10.0), st.floats(-10.0, 10.0)).map(
        lambda r: exp_map(np.array(r)) @ REF
    ),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=9, max_size=9).map(
        lambda v: np.array(v).reshape(3, 3)
    ),
    st.sampled_from([-REF, np.zeros((3, 3)), np.full((3, 3), np.nan), 1e300 * REF]),
)
_command = st.tuples(st.tuples(_coord, _coord, _coord), _rotation, st.floats(1e-4, 0.2))


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky CI
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(commands=st.lists(_command, min_size=1, max_size=25))
def test_property_outputs_stay_in_box_and_within_step(commands):
    limits = SafetyLimits()
    max_dev = np.asarray(limits.max_orientation_deviation)
    f = _filter(limits)
    t = 0.0
    f.submit(CENTER, REF, t)  # the first command after a reset has no rate limit; start it here
    last_accepted = t  # the rate limit counts from the last accepted command
    pos, rot, _ = _out(f, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # arithmetic on 1e308 inputs may overflow
        for position, rotation, dt in commands:
            t += dt
            status = f.submit(np.array(position), rotation, t)
            dt = t - last_accepted
            if not status.rejected_nonfinite:
                last_accepted = t
            # A perfectly tracking arm: the measured pose is the last output (used by stale holds).
            new_pos, new_rot, _ = f.output(t, pos, rot)
            assert np.all(np.isfinite(new_pos))
            assert _inside(limits, new_pos)
            _assert_rotation(new_rot)
            assert np.all(np.abs(_deviation(limits, new_rot)) <= max_dev + 1e-4)
            step = np.linalg.norm(new_pos - pos)
            assert step <= limits.max_translation_per_command + 1e-12
            assert step <= limits.max_linear_speed * dt + 1e-12
            # Clipping into the orientation box (per axis, in rotation-vector coordinates) can stretch a
            # rotation step by a fraction of a percent: allow 2 %.
            angle = angle_between(new_rot, rot)
            assert angle <= 1.02 * limits.max_rotation_per_command
            assert angle <= 1.02 * limits.max_angular_speed * dt + 1e-9
            pos, rot = new_pos, new_rot


# -- the invariants, attacked by random sequences (hypothesis draws new ones on every run) -----------------

_limits = st.builds(
    SafetyLimits,
    max_translation_per_command=st.floats(0.005, 0.1),
    max_rotation_per_command=st.floats(0.05, 0.5),
    max_linear_speed=st.floats(0.05, 1.0),
    max_angular_speed=st.floats(0.1, 3.0),
    max_target_lead=st.floats(0.01, 0.1),
    command_timeout_s=st.floats(0.05, 1.0),
)
_time_step = st.one_of(
    st.floats(0.0, 0.05), st.floats(0.05, 2.0),
    st.sampled_from([np.nan, np.inf, -np.inf, -0.3, 1e300]),  # bad clocks: not finite, backwards, absurd
)
_vec = st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)).map(np.array)
# How a measurement reaches the filter: the truth, or corrupted.
_sensor = st.sampled_from(["true", "true", "true", "nan", "inf", "jump", "bad_rotation"])
_op = st.one_of(
    st.tuples(st.just("submit"), _vec, _vec, _time_step, _sensor),
    st.tuples(st.just("output"), _time_step, _sensor),
    st.tuples(st.just("push"), _vec, _vec),  # the arm moves: tracking, contact, a person (maybe out of the box)
    st.tuples(st.just("estop"), _sensor),
    st.tuples(st.just("clear"),),
    st.tuples(st.just("reset"),),
)


def _corrupt(kind, position, rotation):
    if kind == "nan":
        return np.full(3, np.nan), rotation
    if kind == "inf":
        return position + np.array([np.inf, 0.0, 0.0]), rotation
    if kind == "jump":  # further than the arm could have moved in the whole sequence
        return position + np.array([0.0, 1e3, 0.0]), rotation
    if kind == "bad_rotation":
        return position, -rotation
    return position, rotation


class _Invariants:
    """Follows one filter through a sequence and checks every output against the invariants."""

    def __init__(self, limits):
        self.lim = limits
        self.f = SafetyFilter(limits)
        self.t = 0.0
        self.arm = (CENTER.copy(), REF.copy())  # the arm's true pose
        self.prev: tuple | None = None  # the previous output
        self.prev_change_time: float | None = None  # rate limits count from the previous change
        self.last_accepted = 0.0  # last accepted command (or reset): the watchdog counts from here
        self.estop_hold: tuple | None = None
        self.latest = 0.0  # the latest time the filter has seen: earlier ones are a bad clock
        self.estop_given = None

    def clock(self, dt):
        if not np.isfinite(dt) or dt < 0 or dt > 1e100:
            now = dt if not np.isfinite(dt) or dt > 1e100 else self.t + dt  # NaN/inf, 1e300 or backwards
        else:
            self.t += dt
            now = self.t
        return now

    def clock_ok(self, now):
        ok = bool(np.isfinite(now) and now >= self.latest)
        self.latest = now if ok else self.latest
        return ok

    def reset(self, now=None):
        now = self.t if now is None else now
        self.f.reset(*self.arm, now)
        self.latest = now
        if not self.f.estopped:  # an engaged e-stop keeps its hold through a reset
            self.prev = (self.arm[0].copy(), self.arm[1].copy())  # "stay where you are"
        self.prev_change_time, self.last_accepted = None, now

    def run(self, ops):
        self.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for op in ops:
                getattr(self, "op_" + op[0])(*op[1:])

    def op_push(self, dp, drot):
        # A person or a contact moves the arm (maybe out of the box), at most 1 cm in 20 ms: a believable speed.
        self.t += 0.02
        self.arm = (self.arm[0] + 0.01 * dp / max(1.0, np.linalg.norm(dp)), exp_map(0.05 * drot) @ self.arm[1])

    def op_submit(self, dp, drot, dt, sensor):
        now = self.clock(dt)
        target = (self.arm[0] + 0.2 * dp, exp_map(0.8 * drot) @ self.arm[1])
        clock_ok = np.isfinite(now) and now >= self.latest
        status = self.f.submit(*target, now, measured_position=_corrupt(sensor, *self.arm)[0])
        assert status.rejected_clock == (not clock_ok) or status.estop
        if not status.rejected:
            self.last_accepted = now
        self.op_output(None, sensor, submitted_at=now)

    def op_output(self, dt, sensor, submitted_at=None):
        now = self.clock(dt) if submitted_at is None else submitted_at
        measured = _corrupt(sensor, *self.arm)
        pos, rot, status = self.f.output(now, *measured)
        # 1. always finite, always a rotation
        assert np.all(np.isfinite(pos))
        _assert_rotation(rot)
        where_it_is = sensor == "true" and np.allclose(pos, self.arm[0], atol=1e-12) and np.allclose(
            rot, self.arm[1], atol=1e-9)
        unchanged = np.allclose(pos, self.prev[0], atol=1e-12) and np.allclose(rot, self.prev[1], atol=1e-9)
        # 6. an e-stop holds one pose until it is cleared
        if self.f.estopped:
            assert status.estop
            if self.estop_hold is None:  # held where the arm was when it was engaged, or where we were
                given = self.estop_given
                at_given = given is not None and np.allclose(pos, given[0]) and np.allclose(rot, given[1])
                assert unchanged or at_given
                where_it_is |= at_given  # a hold where the arm was, a moment ago
                self.estop_hold = (pos.copy(), rot.copy())
            np.testing.assert_array_equal(pos, self.estop_hold[0])
            np.testing.assert_array_equal(rot, self.estop_hold[1])
        # 5. no accepted command for command_timeout_s (or no trustworthy clock): a hold
        clock_ok = self.clock_ok(now)
        if not clock_ok or now - self.last_accepted > self.lim.command_timeout_s:
            assert status.stale_hold or status.estop
            if not clock_ok and not status.estop:
                assert unchanged
        # 2-3. a change is either "stay where you are" or a step inside the box within the limits
        if not (unchanged or where_it_is):
            assert submitted_at is not None, "the output changed without a command"
            assert _inside(self.lim, pos, tol=1e-12), "a command outside the box that is not a hold"
            assert np.all(np.abs(_deviation(self.lim, rot)) <= np.asarray(self.lim.max_orientation_deviation) + 1e-9)
            step, angle = np.linalg.norm(pos - self.prev[0]), angle_between(rot, self.prev[1])
            assert step <= self.lim.max_translation_per_command + 1e-12
            assert angle <= self.lim.max_rotation_per_command + 1e-9
            if self.prev_change_time is not None:
                dt = now - self.prev_change_time
                assert step <= self.lim.max_linear_speed * dt + 1e-12
                assert angle <= self.lim.max_angular_speed * dt + 1e-9
        if not _inside(self.lim, pos, tol=1e-12):
            assert unchanged or where_it_is
        if not unchanged:
            self.prev_change_time = now if clock_ok else self.prev_change_time
        self.prev = (pos.copy(), rot.copy())

    def op_estop(self, sensor):
        was = self.f.estopped
        self.f.engage_estop(*_corrupt(sensor, *self.arm), now=self.t)
        if not was:
            self.estop_hold = None
            self.estop_given = self.arm if sensor == "true" else None

    def op_reset(self):  # an episode reset (the bridge re-measures), e-stop or not
        self.reset()

    def op_clear(self):
        self.estop_hold = None
        self.f.clear_estop(*self.arm, self.t)
        self.reset()


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=_limits, ops=st.lists(_op, min_size=1, max_size=30))
def test_property_invariants_hold_for_any_sequence(limits, ops):
    _Invariants(limits).run(ops)


def test_property_before_a_measured_pose_nothing_is_commanded():
    f = SafetyFilter(SafetyLimits())
    f.engage_estop(CENTER, REF, now=0.0)
    for call in (lambda: f.submit(CENTER, REF, 0.0), lambda: f.output(0.0, CENTER, REF)):
        with pytest.raises(RuntimeError, match="reset"):
            call()
