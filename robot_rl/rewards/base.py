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


class Hysteresis:
    """Success only once the score has stayed at or above the threshold for `frames` consecutive
    labels: one noisy frame must not end an episode (and pay the policy for it)."""

    def __init__(self, frames: int = 1):
        if not (isinstance(frames, int) and frames >= 1):
            raise ValueError(f"hysteresis must be an integer >= 1 frame, got {frames!r}")
        self.frames, self.streak = frames, 0

    def reset(self) -> None:
        self.streak = 0

    def update(self, above: bool) -> bool:
        self.streak = self.streak + 1 if above else 0
        return self.streak >= self.frames


def instruction_for(task: str) -> str:
    """The sentence a language-conditioned labeler is given: a simulated task's INSTRUCTION for its id
    ("PickCube-v0" -> "pick up the red cube ..."), anything else as it is (already a sentence)."""
    import sim

    cls = sim.TASKS.get(task.split("/", 1)[-1])
    return cls.INSTRUCTION if cls is not None and cls.INSTRUCTION else task
