"""Robot profiles: one YAML file per arm set-up, the single description that the bridge, the cameras and
the RobotEnv read. Profiles shipped with the package live in hardware/robots/profiles/; `load_profile`
takes one of their names or a path. Unknown keys and bad values fail with the key named.

    name: franka_fr3
    bridge: franky              # sim | franka (franka_ros2) | franky (libfranka via franky) | ur
    namespace: robot            # our topics: /robot/ee_pose, /robot/target_pose, ...
    control_hz: 10.0            # the policy's rate (RobotEnv)
    bridge_hz: 100.0            # how often the bridge sends the filtered target to the controller
    home_position: [0.45, 0.0, 0.3]   # `reset` moves here (m, base frame), at the safety filter's speed
    action: {...}               # controllers.ActionSpec fields
    safety: {...}               # controllers.SafetyLimits fields: workspace box, step/rate limits, watchdog
    topics: {...}               # the controller's topics (see each bridge)
    driver: {...}               # options of the bridge kind (franky: hostname, stiffness, clips, limits)
    cameras: [{...}, ...]       # hardware.cameras.CameraConfig fields
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controllers.actions import ActionSpec
from controllers.safety import SafetyLimits
from hardware.cameras.sources import CameraConfig

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
BRIDGES = ("sim", "franka", "franky", "ur")


@dataclass(frozen=True)
class RobotProfile:
    name: str
    bridge: str
    namespace: str = "robot"
    control_hz: float = 10.0
    bridge_hz: float = 100.0
    home_position: tuple[float, float, float] = (0.45, 0.0, 0.3)
    action: ActionSpec = field(default_factory=ActionSpec)
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    topics: dict[str, str] = field(default_factory=dict)
    cameras: tuple[CameraConfig, ...] = ()
    controller_frame: str = "base"  # frame_id of what the bridge sends to the controller
    task: str = "PickCube-v0"  # bridge "sim": the simulated task; otherwise the task the robot is set up for
    driver: dict[str, Any] = field(default_factory=dict)  # options of the bridge kind (franky: FrankyOptions)
    # Hold-to-run: the arm moves only while a `deadman: true` came within this many seconds (a teleop
    # device's button bound to "deadman"); released, it holds and the episode ends. None: off.
    deadman_timeout_s: float | None = None
    # A gripper behind a control_msgs GripperCommand action (`robot-rl gripper`): GripperActionConfig fields.
    gripper_action: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bridge not in BRIDGES:
            raise ValueError(f"robot profile {self.name!r}: bridge must be one of {BRIDGES}, got {self.bridge!r}")
        if not (0 < self.control_hz <= self.bridge_hz <= 1000):
            raise ValueError(f"robot profile {self.name!r}: need 0 < control_hz <= bridge_hz <= 1000, got "
                             f"{self.control_hz} and {self.bridge_hz}")
        home = tuple(float(v) for v in self.home_position)
        if len(home) != 3 or not self.safety.contains(home):
            raise ValueError(f"robot profile {self.name!r}: home_position {list(home)} must be 3 numbers inside the "
                             f"safety workspace box {list(self.safety.workspace_low)}..{list(self.safety.workspace_high)}")
        object.__setattr__(self, "home_position", home)
        if self.deadman_timeout_s is not None and not (0 < float(self.deadman_timeout_s) <= 5.0):
            raise ValueError(f"robot profile {self.name!r}: deadman_timeout_s must be in (0, 5] s or null, "
                             f"got {self.deadman_timeout_s!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))


def build_section(kind, values: Any, where: str):
    """A dataclass from a profile's mapping: unknown keys and bad values fail with `where` and the key named."""
    if isinstance(values, kind):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping of {kind.__name__} fields, got {values!r}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return kind(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def profile_from_dict(data: dict[str, Any], where: str = "robot profile") -> RobotProfile:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping")
    known = {f.name for f in dataclasses.fields(RobotProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {sorted(known)}")
    values = dict(data)
    values["action"] = build_section(ActionSpec, values.get("action", {}), f"{where}: action")
    values["safety"] = build_section(SafetyLimits, values.get("safety", {}), f"{where}: safety")
    cameras = values.get("cameras", [])
    if not isinstance(cameras, list):
        raise ValueError(f"{where}: cameras must be a list")
    values["cameras"] = tuple(build_section(CameraConfig, c, f"{where}: cameras[{i}]") for i, c in enumerate(cameras))
    if not isinstance(values.get("gripper_action", {}), dict):
        raise ValueError(f"{where}: gripper_action must be a mapping of GripperActionConfig fields")
    if not isinstance(values.get("driver", {}), dict):
        raise ValueError(f"{where}: driver must be a mapping of the bridge's options")
    topics = values.get("topics", {})
    if not (isinstance(topics, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in topics.items())):
        raise ValueError(f"{where}: topics must map names to topic strings")
    for name in ("name", "bridge"):
        if name not in values:
            raise ValueError(f"{where}: `{name}` is required")
    try:
        return RobotProfile(**values)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from err


def load_profile(name_or_path: str | Path) -> RobotProfile:
    """A shipped profile by name (`robot-rl profiles` lists them) or a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        shipped = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ValueError(f"robot profile {name_or_path!r} not found: give a YAML path or one of {shipped}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"robot profile {path} is not valid YAML: {err}") from err
    return profile_from_dict(data, where=f"robot profile {path}")
