from sim.tasks.base import ManipulationEnv, TaskConfig
from sim.tasks.peg_insertion import PegInsertionEnv
from sim.tasks.pick_cube import PickCubeEnv

__all__ = ["ManipulationEnv", "PegInsertionEnv", "PickCubeEnv", "TaskConfig"]
