"""Insert a held square peg into a square hole with 1 mm clearance per side (contact-rich)."""

from __future__ import annotations

import mujoco
import numpy as np

from controllers.actions import ActionSpec
from sim.arm import MAX_GRIPPER_WIDTH
from sim.tasks.base import ManipulationEnv, TaskConfig

PEG_HALF_WIDTH = 0.011
PEG_HALF_LENGTH = 0.035
HOLE_TOP = 0.03  # m, height of the fixture's top face
INSERTED_DEPTH = 0.015  # m below the top face counts as inserted
PEG_CENTER_IN_HAND = 0.10  # m along the hand's z axis (the weld's relpose); fingertips at 0.1034


class PegInsertionEnv(ManipulationEnv):
    """Insert a held 22 mm square peg 15 mm deep into a 24 mm square hole.

    Object state (13): peg tip position (3), peg quaternion wxyz (4), hole position (3),
    peg tip minus hole (3). The gripper holds the peg: the default action has no gripper entry."""

    XML = "peg_insertion.xml"
    INSTRUCTION = "insert the yellow peg into the hole in the blue block"
    OBJECT_BODIES = ("peg",)
    COLORED_GEOMS = ("table", "peg", "wall_px", "wall_nx", "wall_py", "wall_ny")
    DEFAULT_CONFIG = TaskConfig(action=ActionSpec(gripper=False, translation_scale=0.02))
    OBJECT_STATE_DIM = 13
    HOLE_XY_LOW = np.array([0.45, -0.10])
    HOLE_XY_HIGH = np.array([0.58, 0.10])
    ARM_START_CENTER = np.array([0.5, 0.0, 0.2])
    ARM_START_HALF_RANGE = np.array([0.06, 0.1, 0.03])

    def _reset_task(self, rng: np.random.Generator) -> None:
        xy = rng.uniform(self.HOLE_XY_LOW, self.HOLE_XY_HIGH)
        fixture = self.model.body("fixture").mocapid[0]
        self.data.mocap_pos[fixture] = [xy[0], xy[1], 0.0]
        # The peg starts exactly where the grasp weld holds it, between the closed fingers.
        hand = self.data.xpos[self.model.body("hand").id]
        hand_rot = self.data.xmat[self.model.body("hand").id].reshape(3, 3)
        peg_rot = hand_rot @ np.diag([1.0, -1.0, -1.0])  # the peg's z axis points up, tip down
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, peg_rot.reshape(-1))
        self.set_free_body_pose("peg", hand + hand_rot[:, 2] * PEG_CENTER_IN_HAND, quat)
        self.arm.set_gripper(0.0)
        self.data.qpos[self.arm.finger_qpos_adr] = PEG_HALF_WIDTH

    def _gripper_command(self, command_opening: float | None) -> float | None:
        return 0.0 if command_opening is None else command_opening

    def peg_tip(self) -> np.ndarray:
        return self.data.site_xpos[self.model.site("peg_tip").id].copy()

    def hole_position(self) -> np.ndarray:
        return self.data.site_xpos[self.model.site("hole").id].copy()

    def _object_state(self) -> np.ndarray:
        # The held peg's tip is known through the arm's kinematics; the hole is where a tracker or a
        # calibration says, so only the hole carries the tracker's bias (which then shows in tip - hole).
        tip, hole = self.peg_tip(), self._perceived(self.hole_position())
        return np.concatenate([tip, self.body_quaternion("peg"), hole, tip - hole])

    def _success(self) -> bool:
        tip, hole = self.peg_tip(), self.hole_position()
        inside = np.all(np.abs(tip[:2] - hole[:2]) < 0.012)
        return bool(inside and tip[2] <= HOLE_TOP - INSERTED_DEPTH)

    def _dense_reward(self) -> float:
        goal = self.hole_position() - np.array([0.0, 0.0, INSERTED_DEPTH])
        return float(0.99 * (1.0 - np.tanh(10.0 * np.linalg.norm(self.peg_tip() - goal))))


assert MAX_GRIPPER_WIDTH > 2 * PEG_HALF_WIDTH
