"""The simulated arm: state read-out, the impedance law from controllers/, gripper and inverse kinematics.

High-rate control: MuJoCo's own actuators carry it. Every `substeps_per_update` physics steps the law
(`CartesianImpedanceLaw.linearize`) is evaluated in Python and written into seven fixed tendons
(coefficients = Jacobian rows and the nullspace direction) whose affine actuators apply
`k (setpoint - length) - d * velocity`. So stiffness and damping act at every physics step (500 Hz)
with implicit integration, while Python runs at 100 Hz: a Python law at every substep would cost more
than the physics itself (the peer gym_hil spends 73% of its step there). The joints' actuatorfrcrange
applies the law's torque limits.
"""

from __future__ import annotations

import mujoco
import numpy as np

from controllers.impedance import ArmState, CartesianImpedanceLaw, ImpedanceGains

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
TASK_TENDONS = ("task_x", "task_y", "task_z", "task_rx", "task_ry", "task_rz", "nullspace")
# Panda "ready" posture with the gripper pointing down and its fingers opening along the base y axis.
HOME_QPOS = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.0])
MAX_GRIPPER_WIDTH = 0.08  # m


class SimArm:
    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, gains: ImpedanceGains,
                 substeps_per_update: int):
        self.model, self.data = model, data
        self.substeps_per_update = substeps_per_update
        joint_ids = [model.joint(name).id for name in ARM_JOINTS]
        self.qpos_adr = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_adr = np.array([model.jnt_dofadr[j] for j in joint_ids])
        # A slice when the arm's dofs are contiguous (they are): cheaper than fancy indexing.
        first = int(self.dof_adr[0])
        contiguous = np.array_equal(self.dof_adr, np.arange(first, first + 7))
        self._dofs = slice(first, first + 7) if contiguous else self.dof_adr
        self.ee_site = model.site("ee").id
        self.finger_qpos_adr = np.array(
            [model.jnt_qposadr[model.joint(n).id] for n in ("left_finger", "right_finger")]
        )
        self.gripper_actuator = model.actuator("gripper").id
        hand = model.body("hand").id
        self._hand_bodies = {b for b in range(model.nbody) if self._descends_from(b, hand)}
        self._contact_force = np.zeros(6)
        self.task_actuators = np.array([model.actuator(n).id for n in TASK_TENDONS])
        # wrap_prm slots of each task tendon, ordered like ARM_JOINTS.
        slots = []
        for name in TASK_TENDONS:
            tendon = model.tendon(name).id
            adr, num = model.tendon_adr[tendon], model.tendon_num[tendon]
            by_joint = {int(model.wrap_objid[adr + k]): adr + k for k in range(num)}
            slots.append([by_joint[j] for j in joint_ids])
        self._wrap_slots = np.array(slots)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._jac = np.zeros((6, 7))
        self.set_gains(gains)

    def set_gains(self, gains: ImpedanceGains) -> None:
        self.gains = gains
        self.law = CartesianImpedanceLaw(gains, HOME_QPOS)
        stiffness = np.append(gains.stiffness, gains.nullspace_stiffness)
        damping = np.append(gains.damping, gains.nullspace_damping)
        m = self.model
        m.actuator_gainprm[self.task_actuators, 0] = stiffness
        m.actuator_biasprm[self.task_actuators, 0] = 0.0
        m.actuator_biasprm[self.task_actuators, 1] = -stiffness
        m.actuator_biasprm[self.task_actuators, 2] = -damping
        dof_ids = self.dof_adr
        jnt_ids = [m.dof_jntid[d] for d in dof_ids]
        m.jnt_actfrcrange[jnt_ids, 0] = -np.asarray(gains.torque_limits)
        m.jnt_actfrcrange[jnt_ids, 1] = np.asarray(gains.torque_limits)

    # -- state -----------------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self.qpos_adr]

    @property
    def dq(self) -> np.ndarray:
        return self.data.qvel[self._dofs]

    @property
    def ee_position(self) -> np.ndarray:
        return self.data.site_xpos[self.ee_site].copy()

    @property
    def ee_rotation(self) -> np.ndarray:
        return self.data.site_xmat[self.ee_site].reshape(3, 3).copy()

    @property
    def gripper_width(self) -> float:
        return float(self.data.qpos[self.finger_qpos_adr].sum())

    def jacobian(self, data: mujoco.MjData | None = None) -> np.ndarray:
        data = self.data if data is None else data
        mujoco.mj_jacSite(self.model, data, self._jacp, self._jacr, self.ee_site)
        self._jac[:3] = self._jacp[:, self._dofs]
        self._jac[3:] = self._jacr[:, self._dofs]
        return self._jac.copy()

    def ee_velocity(self) -> np.ndarray:
        """Linear and angular end-effector velocity in the base frame."""
        return self.jacobian() @ self.dq

    def external_wrench(self) -> np.ndarray:
        """Force (N) and torque about the end effector (N m), base frame, that contacts apply to the hand
        and fingers: what a real arm's external-wrench estimate reports (Franka's O_F_ext_hat_K)."""
        m, d = self.model, self.data
        wrench = np.zeros(6)
        ee = d.site_xpos[self.ee_site]
        for i in range(d.ncon):
            contact = d.contact[i]
            b1, b2 = m.geom_bodyid[contact.geom1], m.geom_bodyid[contact.geom2]
            on1, on2 = b1 in self._hand_bodies, b2 in self._hand_bodies
            if on1 == on2:
                continue
            mujoco.mj_contactForce(m, d, i, self._contact_force)
            # Contact frame rows are the world axes of (normal, tangent1, tangent2); the force acts on geom2.
            force = contact.frame.reshape(3, 3).T @ self._contact_force[:3]
            if on1:
                force = -force
            wrench[:3] += force
            wrench[3:] += np.cross(contact.pos - ee, force)
        return wrench

    def _descends_from(self, body: int, ancestor: int) -> bool:
        while body != 0:
            if body == ancestor:
                return True
            body = self.model.body_parentid[body]
        return False

    def state(self) -> ArmState:
        return ArmState(q=self.q.copy(), dq=self.dq.copy(), position=self.ee_position,
                        rotation=self.ee_rotation, jacobian=self.jacobian())

    # -- commands --------------------------------------------------------------------------------
    def set_gripper(self, opening: float) -> None:
        """opening in [0, 1]: 0 closed, 1 fully open."""
        self.data.ctrl[self.gripper_actuator] = float(np.clip(opening, 0.0, 1.0)) * MAX_GRIPPER_WIDTH

    def apply_law(self, target_position: np.ndarray, target_rotation: np.ndarray) -> None:
        # Views, not copies: the law reads the state and keeps nothing of it.
        d = self.data
        state = ArmState(q=d.qpos[self.qpos_adr], dq=d.qvel[self._dofs], position=d.site_xpos[self.ee_site],
                         rotation=d.site_xmat[self.ee_site].reshape(3, 3), jacobian=self.jacobian())
        lin = self.law.linearize(state, target_position, target_rotation)
        self.model.wrap_prm[self._wrap_slots] = lin.rows
        self.data.ctrl[self.task_actuators] = lin.setpoints

    def step(self, target_position: np.ndarray, target_rotation: np.ndarray, substeps: int) -> None:
        """Run `substeps` physics steps tracking the target pose, re-linearising the law on schedule."""
        done = 0
        while done < substeps:
            n = min(self.substeps_per_update, substeps - done)
            self.apply_law(target_position, target_rotation)
            mujoco.mj_step(self.model, self.data, nstep=n)
            done += n

    # -- reset helpers ---------------------------------------------------------------------------
    def set_joints(self, q: np.ndarray, gripper_width: float = MAX_GRIPPER_WIDTH) -> None:
        self.data.qpos[self.qpos_adr] = q
        self.data.qvel[self.dof_adr] = 0.0
        self.data.qpos[self.finger_qpos_adr] = gripper_width / 2.0
        self.set_gripper(gripper_width / MAX_GRIPPER_WIDTH)

    def inverse_kinematics(self, position: np.ndarray, rotation: np.ndarray, q_init: np.ndarray,
                           iterations: int = 60, tolerance: float = 1e-5) -> np.ndarray:
        """Damped least-squares IK on a scratch copy of the state, with the nullspace pulled to home."""
        from controllers.rotations import rotation_error

        scratch = mujoco.MjData(self.model)
        q = np.array(q_init, dtype=float)
        low = self.model.jnt_range[[self.model.dof_jntid[d] for d in self.dof_adr], 0]
        high = self.model.jnt_range[[self.model.dof_jntid[d] for d in self.dof_adr], 1]
        for _ in range(iterations):
            scratch.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(self.model, scratch)
            mujoco.mj_comPos(self.model, scratch)
            err = np.concatenate([
                position - scratch.site_xpos[self.ee_site],
                rotation_error(rotation, scratch.site_xmat[self.ee_site].reshape(3, 3)),
            ])
            if np.linalg.norm(err) < tolerance:
                break
            jac = self.jacobian(scratch)
            jjt = jac @ jac.T + 1e-4 * np.eye(6)
            step = jac.T @ np.linalg.solve(jjt, err)
            null = np.eye(7) - np.linalg.pinv(jac) @ jac
            q = np.clip(q + step + 0.1 * null @ (HOME_QPOS - q), low, high)
        return q
