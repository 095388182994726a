"""Teleoperation devices: the common interface, configuration and command logic.

Every device turns its raw input into a `RawInput` (six axes in the *operator frame*, the buttons held
now and the buttons pressed since the last poll) and the shared logic in `TeleopDevice` turns that into a
`TeleopCommand` in the robot's normalised action layout (controllers/actions.py):
float32 in [-1, 1]^d = [dx, dy, dz, (droll, dpitch, dyaw), (gripper)].

Operator frame (all devices): x forward (away from the operator), y to the operator's left, z up;
rotations right-handed about those axes (roll about x, pitch about y, yaw about z). With the default
`TeleopConfig` the operator frame *is* the robot base frame, which is right for an operator standing
behind the robot and facing the way it faces; `axis_map`/`axis_signs` rotate it for other set-ups.
"""

from __future__ import annotations

import abc
import enum
import logging
import time
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger("hardware.teleop")

PIP_HINT = "pip install 'robot_rl[teleop]'"


class OperatorEvent(enum.Enum):
    """One-shot operator signals. TAKEOVER and PAUSE toggle a latched state (`TeleopCommand.takeover`,
    `TeleopCommand.paused`); the event is emitted whenever that state flips."""

    TAKEOVER = "takeover"
    SUCCESS = "success"
    FAILURE = "failure"
    RESET = "reset"
    PAUSE = "pause"
    ESTOP = "estop"  # latch the robot's e-stop: it holds where it is until clear_estop


# What a physical button can be bound to: the gripper, or one of the operator events.
# "deadman": hold-to-run; the robot moves only while it is held (a profile's `deadman_timeout_s`).
BUTTON_FUNCTIONS = ("gripper", "deadman") + tuple(e.value for e in OperatorEvent)

GRIPPER_MODES = ("toggle", "hold")
GRIPPER_OPEN, GRIPPER_CLOSED = 1.0, -1.0


class DeviceNotFound(RuntimeError):
    """The device (or the library that talks to it) is not there; the message says what to check."""


class DeviceDisconnected(RuntimeError):
    """The device went away while in use. `poll()` never raises it: it returns an inactive command,
    sets `device.connected = False` and logs once; `reconnect()` tries again."""


def _check_signs(name: str, value) -> tuple[int, int, int]:
    try:
        signs = tuple(value)
    except TypeError:
        signs = ()
    if len(signs) != 3 or any(isinstance(s, (bool, str)) or s not in (1, -1) for s in signs):
        raise ValueError(f"TeleopConfig.{name} must be three signs (+1 or -1), got {value!r}")
    return tuple(int(s) for s in signs)


@dataclass(frozen=True)
class TeleopConfig:
    """How device input becomes an action. Validated: a wrong value raises ValueError naming the field."""

    translation_scale: float = 1.0  # gain on the normalised deflection before clipping to [-1, 1]
    rotation_scale: float = 1.0
    deadzone: float = 0.1  # per axis, fraction of full deflection; the range beyond it is rescaled to [0, 1]
    use_rotation: bool = False  # action has [droll, dpitch, dyaw]
    use_gripper: bool = True  # action ends with the gripper entry (+1 open, -1 closed)
    gripper_mode: str = "toggle"  # "toggle": a press flips open/closed; "hold": closed while held
    # robot axis i = axis_signs[i] * operator axis axis_map[i] (translation); rotations follow the same
    # signed permutation (times its determinant, so the mapping stays a proper rotation), then rotation_signs
    axis_map: tuple[int, int, int] = (0, 1, 2)
    axis_signs: tuple[int, int, int] = (1, 1, 1)
    rotation_signs: tuple[int, int, int] = (1, 1, 1)
    # True: the first motion latches takeover (TeleopCommand.takeover) until the TAKEOVER button is pressed
    takeover_latch: bool = False

    def __post_init__(self) -> None:
        for name in ("translation_scale", "rotation_scale"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float, np.floating, np.integer))
                or not (np.isfinite(v) and 0 < v <= 10)
            ):
                raise ValueError(f"TeleopConfig.{name} must be a number in (0, 10], got {v!r}")
            object.__setattr__(self, name, float(v))
        dz = self.deadzone
        if (
            isinstance(dz, bool)
            or not isinstance(dz, (int, float, np.floating, np.integer))
            or not (np.isfinite(dz) and 0 <= dz <= 0.9)
        ):
            raise ValueError(f"TeleopConfig.deadzone must be a number in [0, 0.9], got {dz!r}")
        object.__setattr__(self, "deadzone", float(dz))
        for name in ("use_rotation", "use_gripper", "takeover_latch"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                # ValueError like every other config error, so callers catch one type
                raise ValueError(f"TeleopConfig.{name} must be a bool, got {getattr(self, name)!r}")  # noqa: TRY004
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.gripper_mode not in GRIPPER_MODES:
            raise ValueError(
                f"TeleopConfig.gripper_mode must be one of {GRIPPER_MODES}, got {self.gripper_mode!r}"
            )
        try:
            perm = tuple(self.axis_map)
        except TypeError:
            perm = ()
        ints = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in perm)
        if not ints or sorted(int(i) for i in perm) != [0, 1, 2]:
            raise ValueError(
                f"TeleopConfig.axis_map must be a permutation of (0, 1, 2) (robot axis i <- operator axis "
                f"axis_map[i]), got {self.axis_map!r}"
            )
        object.__setattr__(self, "axis_map", tuple(int(i) for i in perm))
        object.__setattr__(self, "axis_signs", _check_signs("axis_signs", self.axis_signs))
        object.__setattr__(self, "rotation_signs", _check_signs("rotation_signs", self.rotation_signs))

    @classmethod
    def for_action_spec(cls, spec, **overrides) -> TeleopConfig:
        """A config whose action layout matches a `controllers.actions.ActionSpec`."""
        kwargs = {"use_rotation": spec.rotation, "use_gripper": spec.gripper}
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def dim(self) -> int:
        return 3 + (3 if self.use_rotation else 0) + (1 if self.use_gripper else 0)

    @property
    def names(self) -> tuple[str, ...]:
        names = ["dx", "dy", "dz"]
        if self.use_rotation:
            names += ["droll", "dpitch", "dyaw"]
        if self.use_gripper:
            names.append("gripper")
        return tuple(names)

    def frame_matrix(self) -> np.ndarray:
        """Signed permutation taking operator-frame translation to robot-frame translation."""
        m = np.zeros((3, 3))
        for i, (j, s) in enumerate(zip(self.axis_map, self.axis_signs)):
            m[i, j] = s
        return m


@dataclass
class TeleopCommand:
    action: np.ndarray  # float32 (config.dim,) in [-1, 1]
    active: bool  # the human is moving, holds the takeover button, or has taken over (latched)
    events: list[OperatorEvent] = field(default_factory=list)
    timestamp: float = 0.0  # time.monotonic() when the newest input behind this command was received
    takeover: bool = False  # latched takeover state (TAKEOVER button toggles it; takeover_latch sets it)
    paused: bool = False  # PAUSE toggles it
    connected: bool = True
    deadman: bool = False  # the hold-to-run button is held now


@dataclass
class RawInput:
    """What a device read, before the shared logic: axes in the operator frame, in [-1, 1]."""

    axes: np.ndarray  # (6,): x, y, z, roll, pitch, yaw
    held: frozenset[str] = frozenset()  # button functions held now
    pressed: tuple[str, ...] = ()  # button functions pressed (rising edges) since the last poll, in order
    timestamp: float | None = None  # monotonic time of the newest input; None: nothing received yet


def validate_button_map(mapping: dict, device: str) -> dict:
    """{physical button: function name}; functions may be given as OperatorEvent members."""
    out = {}
    for key, fn in dict(mapping).items():
        if isinstance(fn, OperatorEvent):
            fn = fn.value
        if fn not in BUTTON_FUNCTIONS:
            raise ValueError(f"{device} button {key!r} is bound to {fn!r}; functions are {BUTTON_FUNCTIONS}")
        out[key] = fn
    return out


def apply_deadzone(axes: np.ndarray, deadzone: float) -> np.ndarray:
    """Zero inside the deadzone, rescaled outside it so that full deflection still reaches 1."""
    axes = np.clip(np.asarray(axes, dtype=np.float64), -1.0, 1.0)
    if deadzone <= 0:
        return axes
    mag = np.maximum(np.abs(axes) - deadzone, 0.0) / (1.0 - deadzone)
    return np.sign(axes) * mag


class TeleopDevice(abc.ABC):
    """A teleop device. Subclasses implement `_open`, `_read` and `_close`; the constructor opens the
    device (DeviceNotFound if it cannot). `poll()` never blocks and never raises on unplug."""

    name = "teleop device"

    def __init__(self, config: TeleopConfig | None = None):
        if config is None:
            config = TeleopConfig()
        if not isinstance(config, TeleopConfig):
            raise TypeError(f"config must be a TeleopConfig, got {type(config).__name__}")
        self.config = config
        self.connected = False
        self.closed = False
        self.last_error: BaseException | None = None
        self._frame = config.frame_matrix()
        self._rot_frame = (
            np.linalg.det(self._frame) * self._frame * np.asarray(config.rotation_signs)[:, None]
        )
        self._gripper = GRIPPER_OPEN
        self._reset_logic()

    # -- to implement ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Open the device; raise DeviceNotFound with a helpful message if impossible."""

    @abc.abstractmethod
    def _read(self) -> RawInput:
        """Latest state, without blocking; raise DeviceDisconnected or OSError if the device is gone."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the device; must tolerate a device that is already gone."""

    # -- public ----------------------------------------------------------------------------------------
    def poll(self) -> TeleopCommand:
        if not self.connected:
            return self._idle_command()
        try:
            raw = self._read()
        except (DeviceDisconnected, OSError) as exc:
            self._lost(exc)
            return self._idle_command()
        return self._compose(raw)

    def reconnect(self) -> bool:
        """Try to open the device again (after an unplug). True on success; on failure the reason is
        logged and kept in `last_error`."""
        if self.closed:
            raise RuntimeError(f"{self.name} was closed; create a new device instead")
        if self.connected:
            return True
        self._safe_close()
        try:
            self._open()
        except (DeviceNotFound, OSError) as exc:
            self.last_error = exc
            logger.info("%s: reconnect failed: %s", self.name, exc)
            return False
        self._reset_logic()
        self.connected = True
        logger.info("%s: reconnected", self.name)
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.connected = False
        self._safe_close()

    def set_gripper(self, is_open: bool) -> None:
        """Sync the device's gripper state with the robot's (e.g. when the human takes over from the policy)."""
        self._gripper = GRIPPER_OPEN if is_open else GRIPPER_CLOSED

    @property
    def takeover(self) -> bool:
        return self._takeover

    def toggle_takeover(self) -> bool:
        """The TAKEOVER button pressed somewhere else (the web console): the same latch as the device's
        own button. While latched the device drives, holding still when untouched. Returns the new state;
        a disconnected device cannot take over."""
        if not self.connected:
            return False
        self._takeover = not self._takeover
        if not self._takeover:
            self._latch_armed = False
        return self._takeover

    @property
    def paused(self) -> bool:
        return self._paused

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, connected={self.connected})"

    # -- shared logic ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        """Call at the end of a subclass constructor."""
        self._open()
        self.connected = True

    def _reset_logic(self) -> None:
        self._takeover = False
        self._paused = False
        self._latch_armed = True
        self._opened_at = time.monotonic()

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception as exc:  # noqa: BLE001 - a device that is gone may fail to close in any way
            logger.debug("%s: error while closing: %s", self.name, exc)

    def _lost(self, exc: BaseException) -> None:
        self.last_error = exc
        if self.connected:
            logger.warning(
                "%s disconnected (%s); teleop commands are inactive until reconnect() succeeds",
                self.name,
                exc,
            )
        self.connected = False
        self._takeover = False
        self._safe_close()

    def _idle_command(self) -> TeleopCommand:
        return TeleopCommand(
            action=np.zeros(self.config.dim, dtype=np.float32),
            active=False,
            events=[],
            timestamp=time.monotonic(),
            takeover=False,
            paused=self._paused,
            connected=False,
        )

    def _compose(self, raw: RawInput) -> TeleopCommand:
        cfg = self.config
        axes = apply_deadzone(raw.axes, cfg.deadzone)
        translation = self._frame @ axes[:3] * cfg.translation_scale
        rotation = self._rot_frame @ axes[3:6] * cfg.rotation_scale
        motion = bool(np.any(axes[:3] != 0)) or (cfg.use_rotation and bool(np.any(axes[3:6] != 0)))

        events: list[OperatorEvent] = []
        gripper_pressed = False
        for fn in raw.pressed:
            if fn == "gripper":
                if cfg.use_gripper:
                    gripper_pressed = True
                    if cfg.gripper_mode == "toggle":
                        self._gripper = GRIPPER_CLOSED if self._gripper == GRIPPER_OPEN else GRIPPER_OPEN
            elif fn == "takeover":
                self._takeover = not self._takeover
                if not self._takeover:
                    self._latch_armed = False  # re-armed once the operator lets go
                events.append(OperatorEvent.TAKEOVER)
            elif fn == "pause":
                self._paused = not self._paused
                events.append(OperatorEvent.PAUSE)
            elif fn == "deadman":
                pass  # held, not pressed, is what counts
            else:
                events.append(OperatorEvent(fn))
        gripper_held = cfg.use_gripper and "gripper" in raw.held
        if cfg.use_gripper and cfg.gripper_mode == "hold":
            self._gripper = GRIPPER_CLOSED if gripper_held else GRIPPER_OPEN
        touching = motion or gripper_held or gripper_pressed
        if not touching:
            self._latch_armed = True
        elif cfg.takeover_latch and self._latch_armed and not self._takeover:
            self._takeover = True
            events.append(OperatorEvent.TAKEOVER)

        parts = [translation]
        if cfg.use_rotation:
            parts.append(rotation)
        if cfg.use_gripper:
            parts.append([self._gripper])
        action = np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
        return TeleopCommand(
            action=action,
            active=touching or "takeover" in raw.held or self._takeover,
            events=events,
            timestamp=self._opened_at if raw.timestamp is None else raw.timestamp,
            takeover=self._takeover,
            paused=self._paused,
            connected=True,
            deadman="deadman" in raw.held,
        )
