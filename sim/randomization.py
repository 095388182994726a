"""Domain randomisation for sim-to-real: physics, controller gains, cameras, colours, latency, noise.

`DomainRandomizer.sample(rng)` draws one `RandomizationSample` (plain numbers, recorded in the reset
info so an episode can be reproduced or inspected); `apply(sample)` first restores the nominal model,
so samples never compound. All draws come from the env's seeded generator: same seed, same episode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import mujoco
import numpy as np


def _range(name: str, value, low_bound: float, high_bound: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (low_bound <= lo <= hi <= high_bound):
        raise ValueError(
            f"Randomization.{name} must be a (low, high) range with {low_bound} <= low <= high <= "
            f"{high_bound}, got {value!r}"
        )
    return lo, hi


@dataclass(frozen=True)
class Randomization:
    enabled: bool = False
    friction_scale: tuple[float, float] = (0.7, 1.3)  # all geoms, sliding friction
    object_mass_scale: tuple[float, float] = (0.5, 2.0)  # task objects
    joint_damping_scale: tuple[float, float] = (0.5, 2.0)  # arm joints
    gain_scale: tuple[float, float] = (0.7, 1.3)  # impedance stiffness
    camera_position_std: float = 0.01  # m
    camera_rotation_std: float = 0.03  # rad
    color_jitter: float = 0.08  # additive RGB on object/table colours
    light_jitter: float = 0.2  # relative headlight intensity
    action_latency_steps: tuple[int, int] = (0, 1)  # control steps, inclusive
    observation_noise_std: float = 0.002  # added to proprio and object state
    object_position_bias_std: float = 0.0  # m: a per-episode object-tracker offset (calibration error)

    def __post_init__(self) -> None:
        object.__setattr__(self, "friction_scale", _range("friction_scale", self.friction_scale, 0.05, 10))
        object.__setattr__(
            self, "object_mass_scale", _range("object_mass_scale", self.object_mass_scale, 0.05, 20)
        )
        object.__setattr__(
            self, "joint_damping_scale", _range("joint_damping_scale", self.joint_damping_scale, 0.0, 20)
        )
        object.__setattr__(self, "gain_scale", _range("gain_scale", self.gain_scale, 0.1, 10))
        lo, hi = _range("action_latency_steps", self.action_latency_steps, 0, 10)
        if lo != int(lo) or hi != int(hi):
            raise ValueError("Randomization.action_latency_steps must be whole control steps")
        object.__setattr__(self, "action_latency_steps", (int(lo), int(hi)))
        for name in ("camera_position_std", "camera_rotation_std", "color_jitter", "light_jitter",
                     "observation_noise_std", "object_position_bias_std"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"Randomization.{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class RandomizationSample:
    friction_scale: float = 1.0
    object_mass_scale: float = 1.0
    joint_damping_scale: float = 1.0
    gain_scale: float = 1.0
    camera_offsets: tuple = ()  # per camera: (dx, dy, dz, rx, ry, rz)
    color_offsets: tuple = ()  # per randomised geom: (dr, dg, db)
    light_scale: float = 1.0
    action_latency_steps: int = 0
    observation_noise_std: float = 0.0
    # A fixed error of the object tracker (m), added to every object position the policy observes
    # (stand-ins for real robots: a calibration error; never randomised here).
    object_position_bias: tuple = (0.0, 0.0, 0.0)

    def as_dict(self) -> dict:
        return asdict(self)


_DEFAULT_GEOM_RGBA = np.array([0.5, 0.5, 0.5, 1.0], np.float32)


def _shown_rgba(model: mujoco.MjModel) -> np.ndarray:
    """Each geom's colour as drawn: a geom with a material and the default rgba is drawn in the
    material's colour, so jittering its own rgba alone would repaint it grey."""
    shown = model.geom_rgba.copy()
    for geom in range(model.ngeom):
        material = model.geom_matid[geom]
        if material >= 0 and np.allclose(model.geom_rgba[geom], _DEFAULT_GEOM_RGBA):
            shown[geom] = model.mat_rgba[material]
    return shown


class DomainRandomizer:
    def __init__(self, model: mujoco.MjModel, config: Randomization, object_bodies: list[str],
                 arm_dof_ids: np.ndarray, colored_geoms: list[str]):
        self.model, self.config = model, config
        self._object_bodies = np.array([model.body(n).id for n in object_bodies], dtype=int)
        self._arm_dofs = np.asarray(arm_dof_ids)
        self._colored = np.array([model.geom(n).id for n in colored_geoms], dtype=int)
        self._nominal = {
            "geom_friction": model.geom_friction.copy(),
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "dof_damping": model.dof_damping.copy(),
            "cam_pos": model.cam_pos.copy(),
            "cam_quat": model.cam_quat.copy(),
            "geom_rgba": model.geom_rgba.copy(),
            "shown_rgba": _shown_rgba(model),
            "headlight_diffuse": model.vis.headlight.diffuse.copy(),
            "headlight_ambient": model.vis.headlight.ambient.copy(),
        }

    def sample(self, rng: np.random.Generator) -> RandomizationSample:
        c = self.config
        if not c.enabled:
            return RandomizationSample()
        cams = tuple(
            tuple(np.concatenate([rng.normal(0, c.camera_position_std, 3),
                                  rng.normal(0, c.camera_rotation_std, 3)]).tolist())
            for _ in range(self.model.ncam)
        )
        colors = tuple(tuple(rng.uniform(-c.color_jitter, c.color_jitter, 3).tolist())
                       for _ in self._colored)
        return RandomizationSample(
            friction_scale=float(rng.uniform(*c.friction_scale)),
            object_mass_scale=float(rng.uniform(*c.object_mass_scale)),
            joint_damping_scale=float(rng.uniform(*c.joint_damping_scale)),
            gain_scale=float(rng.uniform(*c.gain_scale)),
            camera_offsets=cams,
            color_offsets=colors,
            light_scale=float(1.0 + rng.uniform(-c.light_jitter, c.light_jitter)),
            action_latency_steps=int(rng.integers(c.action_latency_steps[0], c.action_latency_steps[1] + 1)),
            observation_noise_std=c.observation_noise_std,
            object_position_bias=tuple(np.append(rng.normal(0, c.object_position_bias_std, 2), 0.0).tolist())
            if c.object_position_bias_std > 0 else (0.0, 0.0, 0.0),
        )

    def apply(self, sample: RandomizationSample, data: mujoco.MjData) -> None:
        """Set the model to nominal plus `sample`. Call right after mj_resetData: it recomputes the
        model's derived constants from `data`'s reset state."""
        m, nominal = self.model, self._nominal
        m.geom_friction[:] = nominal["geom_friction"]
        m.geom_friction[:, 0] *= sample.friction_scale
        m.body_mass[:] = nominal["body_mass"]
        m.body_inertia[:] = nominal["body_inertia"]
        m.body_mass[self._object_bodies] *= sample.object_mass_scale
        m.body_inertia[self._object_bodies] *= sample.object_mass_scale
        m.dof_damping[:] = nominal["dof_damping"]
        m.dof_damping[self._arm_dofs] *= sample.joint_damping_scale
        m.cam_pos[:] = nominal["cam_pos"]
        m.cam_quat[:] = nominal["cam_quat"]
        for cam, offset in enumerate(sample.camera_offsets):
            m.cam_pos[cam] += offset[:3]
            delta = np.zeros(4)
            mujoco.mju_axisAngle2Quat(delta, np.asarray(offset[3:]) / max(np.linalg.norm(offset[3:]), 1e-12),
                                      float(np.linalg.norm(offset[3:])))
            mujoco.mju_mulQuat(m.cam_quat[cam], nominal["cam_quat"][cam], delta)
        m.geom_rgba[:] = nominal["geom_rgba"]
        for geom, offset in zip(self._colored, sample.color_offsets):
            # Jitter the colour the geom is drawn in (its material's, for a geom that takes one).
            m.geom_rgba[geom] = nominal["shown_rgba"][geom]
            m.geom_rgba[geom, :3] = np.clip(m.geom_rgba[geom, :3] + offset, 0.0, 1.0)
        m.vis.headlight.diffuse[:] = np.clip(nominal["headlight_diffuse"] * sample.light_scale, 0, 1)
        m.vis.headlight.ambient[:] = np.clip(nominal["headlight_ambient"] * sample.light_scale, 0, 1)
        # Constraint softness is scaled by each body's inverse weight, computed when the model was
        # compiled: after changing masses it must be recomputed, or welds and contacts of a heavier
        # or lighter object go unstable.
        mujoco.mj_setConst(m, data)
