"""The labeler interface: one call per observation, used online (the ROS 2 reward node, in a worker
thread so it never blocks a control loop) and offline (relabelling stored episodes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Label:
    reward: float
    success: bool
    confidence: float | None = None  # the labeler's probability of `success`, where it has one


class Labeler(Protocol):
    name: str  # recorded as the reward source ("classifier", "vlm:<model>", ...)

    def label(self, images: dict[str, np.ndarray], task: str) -> Label | None:
        """`images`: {camera: uint8 HxWx3 RGB}, all from one instant. None: no label (logged, never raised)."""
        ...


def instruction_for(task: str) -> str:
    """The sentence a language-conditioned labeler is given: a simulated task's INSTRUCTION for its id
    ("PickCube-v0" -> "pick up the red cube ..."), anything else as it is (already a sentence)."""
    import sim

    cls = sim.TASKS.get(task.split("/", 1)[-1])
    return cls.INSTRUCTION if cls is not None and cls.INSTRUCTION else task
