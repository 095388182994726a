"""Normalised policy actions -> end-effector target poses.

An action is float32 in [-1, 1]^d laid out as [dx, dy, dz, (droll, dpitch, dyaw), (gripper)]. Deltas
are scaled to metres / radians per step and applied to the measured end-effector pose, in the base
frame or the end-effector frame. The gripper entry, with `gripper_mode`:
- "absolute": an opening command, -1 closed, +1 open (continuous);
- "toggle" (HIL-SERL's discrete gripper): <= -0.5 close, >= 0.5 open, in between keep the current command,
  so a policy picks one of {close, stay, open} = {-1, 0, +1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controllers.rotations import exp_map

FRAMES = ("base", "ee")
GRIPPER_MODES = ("absolute", "toggle")


@dataclass(frozen=True)
class ActionSpec:
    translation_scale: float = 0.03  # metres per step at |a| = 1
    rotation: bool = False
    rotation_scale: float = 0.15  # radians per step at |a| = 1
    gripper: bool = True
    frame: str = "base"
    gripper_mode: str = "absolute"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.translation_scale) and 0 < self.translation_scale <= 0.2):
            raise ValueError(
                f"ActionSpec.translation_scale must be in (0, 0.2] m per step, got {self.translation_scale}"
            )
        if not (np.isfinite(self.rotation_scale) and 0 < self.rotation_scale <= 1.0):
            raise ValueError(
                f"ActionSpec.rotation_scale must be in (0, 1] rad per step, got {self.rotation_scale}"
            )
        if self.frame not in FRAMES:
            raise ValueError(f"ActionSpec.frame must be one of {FRAMES}, got {self.frame!r}")
        if self.gripper_mode not in GRIPPER_MODES:
            raise ValueError(f"ActionSpec.gripper_mode must be one of {GRIPPER_MODES}, got {self.gripper_mode!r}")

    @property
    def dim(self) -> int:
        return 3 + (3 if self.rotation else 0) + (1 if self.gripper else 0)

    @property
    def names(self) -> tuple[str, ...]:
        names = ["dx", "dy", "dz"]
        if self.rotation:
            names += ["droll", "dpitch", "dyaw"]
        if self.gripper:
            names.append("gripper")
        return tuple(names)


@dataclass(frozen=True)
class EndEffectorCommand:
    position: np.ndarray
    rotation: np.ndarray
    gripper: float | None  # opening in [0, 1], None when the action has no gripper entry


def validate_action(action, spec: ActionSpec) -> np.ndarray:
    """The action as a float64 vector; a clear ValueError for a wrong shape or a NaN/Inf entry."""
    arr = np.asarray(action, dtype=np.float64)
    if arr.shape != (spec.dim,):
        raise ValueError(
            f"action must have shape ({spec.dim},) laid out as {list(spec.names)}, got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        names = [n for n, b in zip(spec.names, bad) if b]
        raise ValueError(f"action has non-finite entries {names}: {arr.tolist()}")
    return arr


def gripper_opening(value: float, spec: ActionSpec, current_opening: float) -> float:
    """Opening command in [0, 1] for a gripper action value in [-1, 1]."""
    if spec.gripper_mode == "toggle":
        if value <= -0.5:
            return 0.0
        if value >= 0.5:
            return 1.0
        return float(current_opening)
    return float((value + 1.0) / 2.0)


def action_to_command(
    action, spec: ActionSpec, position: np.ndarray, rotation: np.ndarray, current_opening: float = 1.0
) -> EndEffectorCommand:
    """Target pose from a normalised action and the measured end-effector pose. Values outside
    [-1, 1] are clipped (policies may overshoot); non-finite values raise. `current_opening` is the
    gripper's present command, kept by a "stay" in toggle mode."""
    a = np.clip(validate_action(action, spec), -1.0, 1.0)
    delta_pos = a[:3] * spec.translation_scale
    target_rot = rotation
    if spec.frame == "ee":
        delta_pos = rotation @ delta_pos
    if spec.rotation:
        delta_rot = exp_map(a[3:6] * spec.rotation_scale)
        target_rot = rotation @ delta_rot if spec.frame == "ee" else delta_rot @ rotation
    gripper = gripper_opening(a[-1], spec, current_opening) if spec.gripper else None
    return EndEffectorCommand(position=position + delta_pos, rotation=target_rot, gripper=gripper)
