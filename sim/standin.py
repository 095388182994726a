"""Stand-ins for real robots: a task with a fixed, undisclosed shift of dynamics and visuals (friction,
masses, joint damping, controller gains, latency, sensor noise, camera pose, colours, light), served
behind the ROS 2 robot interface by `robot-rl sim-robot --standin NAME`. Training code never reads these
files: the point is to measure a sim-to-real gap the learner did not see.

    shift = load_standin("pick_cube")          # sim/standins/pick_cube.yaml, or a path
    env = sim.make(shift.task)
    env.set_domain_shift(shift.sample_for(env))  # every reset from now on uses it
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from sim.randomization import RandomizationSample

STANDINS = Path(__file__).resolve().parent / "standins"
_SCALES = {"friction_scale": (0.05, 10.0), "object_mass_scale": (0.05, 20.0), "joint_damping_scale": (0.0, 20.0),
           "gain_scale": (0.1, 10.0), "light_scale": (0.1, 3.0)}


@dataclass(frozen=True)
class StandIn:
    task: str
    friction_scale: float = 1.0
    object_mass_scale: float = 1.0
    joint_damping_scale: float = 1.0
    gain_scale: float = 1.0
    action_latency_steps: int = 0
    observation_noise_std: float = 0.0
    light_scale: float = 1.0
    object_position_bias: tuple = (0.0, 0.0, 0.0)  # the object tracker's calibration error, m
    cameras: dict = field(default_factory=dict)  # camera: (dx, dy, dz, rx, ry, rz)
    colors: dict = field(default_factory=dict)  # geom: (dr, dg, db)
    name: str = ""

    def __post_init__(self) -> None:
        for key, (low, high) in _SCALES.items():
            value = getattr(self, key)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise ValueError(f"stand-in {self.name}: {key} must be a number in [{low}, {high}], got {value!r}")
        if not (isinstance(self.action_latency_steps, int) and 0 <= self.action_latency_steps <= 10):
            raise ValueError(f"stand-in {self.name}: action_latency_steps must be an integer in [0, 10]")
        if not 0 <= self.observation_noise_std <= 1:
            raise ValueError(f"stand-in {self.name}: observation_noise_std must be in [0, 1]")
        bias = np.asarray(self.object_position_bias, dtype=float)
        if bias.shape != (3,) or not np.all(np.abs(bias) <= 0.1):
            raise ValueError(f"stand-in {self.name}: object_position_bias must be 3 numbers within 0.1 m")
        object.__setattr__(self, "object_position_bias", tuple(float(v) for v in bias))
        for key, size in (("cameras", 6), ("colors", 3)):
            for name, values in getattr(self, key).items():
                if len(values) != size or not np.all(np.isfinite(values)):
                    raise ValueError(f"stand-in {self.name}: {key}.{name} must be {size} finite numbers, got {values!r}")

    def sample_for(self, env) -> RandomizationSample:
        """The shift as the env's RandomizationSample (cameras and colours in the model's order)."""
        model = env.unwrapped.model
        cameras = [model.camera(i).name for i in range(model.ncam)]
        unknown = sorted(set(self.cameras) - set(cameras))
        colored = list(env.unwrapped.COLORED_GEOMS)
        unknown += sorted(set(self.colors) - set(colored))
        if unknown:
            raise ValueError(f"stand-in {self.name}: unknown camera or coloured geom(s) {unknown}; "
                             f"cameras {cameras}, geoms {colored}")
        return RandomizationSample(
            friction_scale=self.friction_scale, object_mass_scale=self.object_mass_scale,
            joint_damping_scale=self.joint_damping_scale, gain_scale=self.gain_scale,
            camera_offsets=tuple(tuple(float(v) for v in self.cameras.get(c, (0.0,) * 6)) for c in cameras),
            color_offsets=tuple(tuple(float(v) for v in self.colors.get(g, (0.0,) * 3)) for g in colored),
            light_scale=self.light_scale, action_latency_steps=self.action_latency_steps,
            observation_noise_std=self.observation_noise_std, object_position_bias=self.object_position_bias)


def available_standins() -> list[str]:
    return sorted(p.stem for p in STANDINS.glob("*.yaml"))


def load_standin(name_or_path: str) -> StandIn:
    path = Path(name_or_path)
    if not path.exists():
        path = STANDINS / f"{name_or_path}.yaml"
    if not path.exists():
        raise ValueError(f"no stand-in {name_or_path!r}: give a YAML path or one of {available_standins()}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"stand-in {path} is not valid YAML: {err}") from err
    known = set(StandIn.__dataclass_fields__) - {"name"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"stand-in {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    if "task" not in values:
        raise ValueError(f"stand-in {path}: name its task (task: PickCube-v0)")
    return StandIn(**values, name=path.stem)
