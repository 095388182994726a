"""The labeler interface: one call per observation, used online (the ROS 2 reward node, in a worker
thread so it never blocks a control loop) and offline (relabelling stored episodes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Label:
    reward: float
    success: bool
    confidence: float | None = None  # the labeler's probability of `success`, where it has one


class Labeler:
    """Base of every labeler. Subclasses set `name` and implement `label`; the attributes below say what
    the labeler reads, so callers never have to probe for them."""

    name: str = "labeler"  # recorded as the reward source ("classifier", "vlm:<model>", ...)
    cameras: tuple[str, ...] = ()  # the cameras it reads; (): any the caller gives (e.g. ("front",))
    image_size: int | None = None  # the square frame side it takes; None: any
    threshold: float | None = None  # the score at or above which it calls success, where it has one

    def reset(self) -> None:
        """A new episode begins (hysteresis and other per-episode state)."""

    def label(self, images: dict[str, np.ndarray], task: str) -> Label | None:
        """`images`: {camera: uint8 HxWx3 RGB}, all from one instant. None: no label (logged, never raised)."""
        raise NotImplementedError

    def provenance(self, task: str = "") -> dict:
        """What produced a label, recorded with relabelled episodes: name, threshold, and its settings."""
        return {"labeler": self.name, "threshold": self.threshold, "cameras": list(self.cameras)}


class EpisodeLabeler(Labeler):
    """A labeler that judges a whole episode at once (progress estimators, offline relabelling only)."""

    def label_episode(self, images: dict[str, np.ndarray], task: str) -> list[Label | None]:
        """`images`: {camera: uint8 (T+1, H, W, 3)}; one label per step (for the frame after it)."""
        raise NotImplementedError

    def label(self, images: dict[str, np.ndarray], task: str) -> Label | None:
        raise ValueError(f"{self.name} labels whole episodes (label_episode), not single frames")


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
