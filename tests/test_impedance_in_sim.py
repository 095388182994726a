"""The simulator applies the control law of controllers/ (not a look-alike), with the stiffness it says."""

import mujoco
import numpy as np
import pytest

import sim
from controllers.impedance import ImpedanceGains


@pytest.mark.parametrize("offset", [(0.01, -0.005, 0.003), (0.2, 0.0, -0.3), (0.0, 0.0, 0.0)])
def test_mujoco_actuators_apply_exactly_the_laws_torque(offset):
    env = sim.make("PickCube-v0")
    env.reset(seed=3)
    env.step(np.array([0.5, -0.3, 0.2, 1.0]))  # moving, so damping terms are non-zero
    arm = env.arm
    state = arm.state()
    target_rot = env._reference_rotation @ np.array([[1, 0, 0], [0, np.cos(0.05), -np.sin(0.05)],
                                                     [0, np.sin(0.05), np.cos(0.05)]])
    target = state.position + np.array(offset)
    arm.apply_law(target, target_rot)
    mujoco.mj_forward(env.model, env.data)
    applied = env.data.qfrc_actuator[arm.dof_adr]
    expected = arm.law.torque(state, target, target_rot)
    assert np.abs(state.dq).max() > 1e-3
    np.testing.assert_allclose(applied, expected, atol=1e-8)


def test_torque_limits_hold_in_simulation():
    gains = ImpedanceGains(translational_stiffness=(20000.0,) * 3, max_position_error=(0.5,) * 3,
                           torque_limits=(20.0, 20.0, 20.0, 20.0, 5.0, 5.0, 5.0))
    env = sim.make("PickCube-v0", gains=gains)
    env.reset(seed=0)
    arm = env.arm
    arm.apply_law(arm.ee_position + np.array([0.5, 0.5, -0.5]), env._reference_rotation)
    mujoco.mj_forward(env.model, env.data)
    applied = np.abs(env.data.qfrc_actuator[arm.dof_adr])
    assert np.all(applied <= np.array(gains.torque_limits) + 1e-9)
    assert applied.max() == pytest.approx(20.0)


def test_end_effector_behaves_as_the_configured_spring():
    """A constant 10 N push on the hand deflects it by about F / K (compliance, not position control)."""
    for stiffness in (1000.0, 2000.0):
        env = sim.make("PickCube-v0", gains=ImpedanceGains(translational_stiffness=(stiffness,) * 3))
        env.reset(seed=0)
        arm = env.arm
        target, rot = arm.ee_position, env._reference_rotation
        arm.step(target, rot, 200)
        hand = env.model.body("hand").id
        env.data.xfrc_applied[hand, :3] = [10.0, 0.0, 0.0]
        arm.step(target, rot, 1000)  # 2 s to settle
        deflection = arm.ee_position - target
        assert deflection[0] == pytest.approx(10.0 / stiffness, rel=0.25)
        assert np.abs(deflection[1:]).max() < 0.3 * 10.0 / stiffness


def test_tracks_a_target_and_holds_orientation():
    env = sim.make("PickCube-v0")
    env.reset(seed=2)
    start = env.arm.ee_position
    for _ in range(10):
        env.step(np.array([0.5, 0.5, -0.5, 1.0]))
    for _ in range(10):
        env.step(np.zeros(4) + np.array([0, 0, 0, 1.0]))
    moved = env.arm.ee_position - start
    np.testing.assert_allclose(moved, [0.15, 0.15, -0.15], atol=0.01)
    from controllers.rotations import angle_between

    assert angle_between(env.arm.ee_rotation, env._reference_rotation) < 0.02
