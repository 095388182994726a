"""Scripted experts: they read the simulator's true state and return normalised actions.

They record demonstrations and later play the simulated human who intervenes. Each is a small state
machine over the measured state; `noise_std` adds Gaussian action noise (from the caller's generator)
for more varied demonstrations.
"""

from __future__ import annotations

import numpy as np

from sim.tasks.peg_insertion import HOLE_TOP, PegInsertionEnv
from sim.tasks.pick_cube import PickCubeEnv


class ScriptedExpert:
    def __init__(self, env, noise_std: float = 0.0, rng: np.random.Generator | None = None):
        self.env = env.unwrapped
        self.noise_std = noise_std
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.counter = 0

    # Proportional gain below 1 so the loop also settles with a step or two of action latency.
    GAIN = 0.6

    def _move(self, goal: np.ndarray, max_action: float = 1.0) -> np.ndarray:
        """Translation action that moves the controller's target towards `goal`."""
        scale = self.env.config.action.translation_scale
        return np.clip(self.GAIN * (goal - self.env.target_position) / scale, -max_action, max_action)

    def _finish(self, translation: np.ndarray, gripper: float | None) -> np.ndarray:
        spec = self.env.config.action
        action = np.zeros(spec.dim)
        action[:3] = translation
        if spec.gripper and gripper is not None:
            action[-1] = gripper
        if self.noise_std > 0:
            action = action + self.rng.normal(0.0, self.noise_std, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def act(self, obs=None) -> np.ndarray:
        raise NotImplementedError

    def sync(self) -> None:
        """Re-derive the phase from the measured state: for taking over an episode someone else
        (a policy) has been driving. Default: start over."""
        self.reset()


class PickCubeExpert(ScriptedExpert):
    APPROACH_HEIGHT = 0.06
    GRASP_DEPTH = -0.004  # end-effector (fingertip centre) relative to the cube centre
    CLOSE_STEPS = 3

    def act(self, obs=None) -> np.ndarray:
        env: PickCubeEnv = self.env
        cube, ee = env.cube_position(), env.arm.ee_position
        above = cube + np.array([0.0, 0.0, self.APPROACH_HEIGHT])
        grasp = cube + np.array([0.0, 0.0, self.GRASP_DEPTH])
        if self.phase == 0:  # above the cube, open
            if np.linalg.norm(above - ee) < 0.01:
                self.phase = 1
            return self._finish(self._move(above), 1.0)
        if self.phase == 1:  # straight down around the cube
            if np.linalg.norm(grasp - ee) < 0.006:
                self.phase, self.counter = 2, 0
            elif np.linalg.norm((cube - ee)[:2]) > 0.02:  # the cube moved away: start over
                self.phase = 0
            return self._finish(self._move(grasp, 0.6), 1.0)
        if self.phase == 2:  # close
            self.counter += 1
            if self.counter >= self.CLOSE_STEPS:
                self.phase = 3
            return self._finish(self._move(grasp), -1.0)
        # lift; if the cube slipped out, go back for it
        if env.arm.gripper_width < 0.01:
            self.phase = 0
        return self._finish(self._move(np.array([cube[0], cube[1], 0.2])), -1.0)

    def sync(self) -> None:
        env: PickCubeEnv = self.env
        cube, ee = env.cube_position(), env.arm.ee_position
        near = np.linalg.norm(cube + np.array([0.0, 0.0, self.GRASP_DEPTH]) - ee) < 0.015
        self.counter = 0
        if near and env.arm.gripper_width > 0.01 and env.gripper_opening < 0.5:
            self.phase = 3  # holding it: lift
        elif near:
            self.phase = 1  # around it, open: finish the descent (then close)
        else:
            self.phase = 0


class PegInsertionExpert(ScriptedExpert):
    CLEARANCE = 0.012  # peg tip above the fixture while aligning

    def act(self, obs=None) -> np.ndarray:
        env: PegInsertionEnv = self.env
        tip, hole = env.peg_tip(), env.hole_position()
        offset = env.target_position - tip  # tip goal -> end-effector target goal
        xy_error = np.linalg.norm((hole - tip)[:2])
        if self.phase == 0:
            goal = np.array([hole[0], hole[1], HOLE_TOP + self.CLEARANCE])
            if xy_error < 0.0015 and abs(tip[2] - goal[2]) < 0.006:
                self.phase = 1
            return self._finish(self._move(goal + offset), None)
        if xy_error > 0.006 and tip[2] > HOLE_TOP:  # lost alignment above the hole: realign
            self.phase = 0
        goal = np.array([hole[0], hole[1], HOLE_TOP - 0.03])
        return self._finish(self._move(goal + offset, 0.5), None)

    def sync(self) -> None:
        env: PegInsertionEnv = self.env
        tip, hole = env.peg_tip(), env.hole_position()
        self.phase = 1 if np.linalg.norm((hole - tip)[:2]) < 0.0015 else 0


EXPERTS = {"PickCube-v0": PickCubeExpert, "PegInsertion-v0": PegInsertionExpert}


def expert_for(task_id: str, env, **kwargs) -> ScriptedExpert:
    name = task_id.split("/", 1)[-1]
    if name not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task_id!r}; available: {sorted(EXPERTS)}")
    return EXPERTS[name](env, **kwargs)
