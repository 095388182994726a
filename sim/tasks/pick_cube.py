"""Pick up a cube from the table and lift it."""

from __future__ import annotations

import numpy as np

from sim.tasks.base import ManipulationEnv, TaskConfig

CUBE_HALF = 0.02  # m
LIFT_HEIGHT = 0.06  # m above the resting height counts as lifted


class PickCubeEnv(ManipulationEnv):
    """Pick up a 4 cm cube and lift it 6 cm (success ends the episode).

    Object state (10): cube position (3), cube quaternion wxyz (4), cube minus end effector (3)."""

    XML = "pick_cube.xml"
    INSTRUCTION = "pick up the red cube and lift it above the table"
    OBJECT_BODIES = ("cube",)
    COLORED_GEOMS = ("table", "cube")
    DEFAULT_CONFIG = TaskConfig()
    OBJECT_STATE_DIM = 10
    CUBE_XY_LOW = np.array([0.40, -0.12])
    CUBE_XY_HIGH = np.array([0.60, 0.12])
    CUBE_MAX_YAW = 0.3  # rad; the default action has no rotation, so the cube faces the fingers

    def _reset_task(self, rng: np.random.Generator) -> None:
        xy = rng.uniform(self.CUBE_XY_LOW, self.CUBE_XY_HIGH)
        yaw = rng.uniform(-self.CUBE_MAX_YAW, self.CUBE_MAX_YAW)
        self.set_free_body_pose("cube", [xy[0], xy[1], CUBE_HALF], [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])

    def cube_position(self) -> np.ndarray:
        return self.body_position("cube")

    def _object_state(self) -> np.ndarray:
        cube = self._perceived(self.cube_position())
        return np.concatenate([cube, self.body_quaternion("cube"), cube - self.arm.ee_position])

    def _success(self) -> bool:
        return bool(self.cube_position()[2] >= CUBE_HALF + LIFT_HEIGHT)

    def _dense_reward(self) -> float:
        cube = self.cube_position()
        reach = 1.0 - np.tanh(10.0 * np.linalg.norm(cube - self.arm.ee_position))
        lift = np.clip((cube[2] - CUBE_HALF) / LIFT_HEIGHT, 0.0, 1.0)
        return float(0.99 * (reach + 2.0 * lift) / 3.0)
