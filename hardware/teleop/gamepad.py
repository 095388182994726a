"""SDL2 gamepad through pygame's joystick API and event queue; works headless (SDL_VIDEODRIVER=dummy).

Buttons and axes are named as in SDL's game-controller database ("a", "b", "leftx", "lefttrigger", ...).
The joystick indices behind those names come from SDL's mapping for the pad when SDL knows it
(pygame._sdl2.controller), else from `DEFAULT_LAYOUT` (an Xbox-style pad under Linux's xpad driver);
`layout=` overrides single entries.

Default mapping (operator frame: x forward, y left, z up):
- left stick: forward/back -> x, left/right -> y;
- z: right trigger up, left trigger down (`z_source="triggers"`), or the right stick's forward/back
  (`z_source="right_stick"`, translation-only);
- rotation (TeleopConfig.use_rotation): right stick forward/back -> +pitch/-pitch, left/right -> +yaw/-yaw
  (right turns clockwise seen from above), right/left bumper -> +roll / -roll;
- A gripper, B takeover, X success, Y failure, Start pause, Back reset, Guide (centre) E-STOP
  (`buttons=` rebinds them).

pygame's queue is process-wide: this device takes the joystick events off it (one gamepad per process),
and leaves every other event where it is.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from hardware.teleop.base import (
    PIP_HINT,
    DeviceDisconnected,
    DeviceNotFound,
    RawInput,
    TeleopConfig,
    TeleopDevice,
    validate_button_map,
)

# Linux evdev order of an Xbox-style pad (xpad driver); used when SDL has no mapping for the pad.
DEFAULT_LAYOUT = {
    "a": "b0", "b": "b1", "x": "b2", "y": "b3", "leftshoulder": "b4", "rightshoulder": "b5",
    "back": "b6", "start": "b7", "guide": "b8", "leftstick": "b9", "rightstick": "b10",
    "leftx": "a0", "lefty": "a1", "lefttrigger": "a2", "rightx": "a3", "righty": "a4", "righttrigger": "a5",
}  # fmt: skip
DEFAULT_BUTTONS = {
    "a": "gripper",
    "b": "takeover",
    "x": "success",
    "y": "failure",
    "start": "pause",
    "back": "reset",
    "guide": "estop",  # the big centre button: the e-stop
}
STICKS = ("leftx", "lefty", "rightx", "righty")
TRIGGERS = ("lefttrigger", "righttrigger")
Z_SOURCES = ("triggers", "right_stick")


def _parse_source(spec: str):
    """'b3' -> ('button', 3); 'a2' / 'a2~' / '+a2' / '-a2' -> ('axis', 2, invert, half); else None (hats)."""
    spec = str(spec).strip()
    half = None
    if spec[:1] in "+-" and len(spec) > 1:
        half, spec = spec[0], spec[1:]
    invert = spec.endswith("~")
    spec = spec.rstrip("~")
    if len(spec) > 1 and spec[0] in "ab" and spec[1:].isdigit():
        if spec[0] == "b":
            return ("button", int(spec[1:]))
        return ("axis", int(spec[1:]), invert, half)
    return None


class GamepadState:
    """The gamepad's event processing, without SDL calls: `handle()` pygame events, read `raw_input()`."""

    def __init__(
        self, instance_id: int, layout: dict[str, str], buttons: dict[str, str], z_source: str = "triggers"
    ):
        self.instance_id = instance_id
        self.z_source = z_source
        self.buttons = buttons
        self._button_names: dict[int, str] = {}
        self._axis_sources: dict[str, tuple] = {}
        for name, spec in layout.items():
            if name[:1] in "+-":  # output half-axes (rare): not used here
                continue
            src = _parse_source(spec) if isinstance(spec, str) else None
            if src is None:
                continue
            if src[0] == "button":
                self._button_names[src[1]] = name
            else:
                self._axis_sources[name] = src[1:]
        self._axes: dict[int, float] = {}
        self._held: set[int] = set()
        self._pressed: list[str] = []
        self.last_input: float | None = None
        self.removed = False

    def handle(self, event, now: float) -> None:
        import pygame

        if getattr(event, "instance_id", None) != self.instance_id:
            return
        if event.type == pygame.JOYAXISMOTION:
            self._axes[int(event.axis)] = float(np.clip(event.value, -1.0, 1.0))
        elif event.type == pygame.JOYBUTTONDOWN:
            if event.button not in self._held:
                self._held.add(event.button)
                fn = self.buttons.get(self._button_names.get(event.button, ""))
                if fn is not None:
                    self._pressed.append(fn)
        elif event.type == pygame.JOYBUTTONUP:
            self._held.discard(event.button)
        elif event.type == pygame.JOYDEVICEREMOVED:
            self.removed = True
            return
        else:
            return
        self.last_input = now

    def axis(self, name: str) -> float:
        """Sticks in [-1, 1] (SDL: right and down positive), triggers in [0, 1] (0 at rest)."""
        src = self._axis_sources.get(name)
        if src is None:
            return 0.0
        index, invert, half = src
        trigger = name in TRIGGERS
        # An axis not moved since open reads as at rest: triggers rest at -1 on full-range axes. (SDL
        # reports 0 for untouched axes on some drivers, which would read as a half-pressed trigger.)
        v = self._axes.get(index, -1.0 if trigger and half is None else 0.0)
        if invert:
            v = -v
        if half == "+":
            v = max(v, 0.0)
        elif half == "-":
            v = max(-v, 0.0)
        if trigger:
            return float(np.clip(v if half else (v + 1.0) / 2.0, 0.0, 1.0))
        return float(v)

    def button_held(self, name: str) -> bool:
        return any(self._button_names.get(b) == name for b in self._held)

    def raw_input(self) -> RawInput:
        x, y = -self.axis("lefty"), -self.axis("leftx")
        if self.z_source == "triggers":
            z = self.axis("righttrigger") - self.axis("lefttrigger")
        else:
            z = -self.axis("righty")
        roll = float(self.button_held("rightshoulder")) - float(self.button_held("leftshoulder"))
        pitch, yaw = -self.axis("righty"), -self.axis("rightx")
        if self.z_source != "triggers":
            pitch = yaw = 0.0
        axes = np.array([x, y, z, roll, pitch, yaw])
        held = frozenset(fn for name, fn in self.buttons.items() if self.button_held(name))
        pressed, self._pressed = tuple(self._pressed), []
        return RawInput(axes, held, pressed, self.last_input)


def _prepare_sdl_env() -> None:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def _import_pygame():
    _prepare_sdl_env()
    try:
        import pygame
    except ImportError as exc:
        raise DeviceNotFound(
            f"gamepad support needs pygame (import pygame failed: {exc}); {PIP_HINT}"
        ) from None
    return pygame


HEADLESS_HINT = (
    "on a machine without a display SDL needs SDL_VIDEODRIVER=dummy (set automatically when DISPLAY and "
    "WAYLAND_DISPLAY are unset) and SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1 (set automatically)"
)


def _sdl_mapping(index: int) -> dict | None:
    """SDL's game-controller mapping for joystick `index` ({'a': 'b0', 'leftx': 'a0', ...}), if any."""
    try:
        from pygame._sdl2 import controller

        if not controller.get_init():
            controller.init()
        if not controller.is_controller(index):
            return None
        pad = controller.Controller(index)
        try:
            mapping = pad.get_mapping()
        finally:
            pad.quit()
        return dict(mapping) if mapping else None
    except Exception:  # noqa: BLE001 - private pygame module: any failure falls back to DEFAULT_LAYOUT
        return None


class GamepadDevice(TeleopDevice):
    """A gamepad through SDL2 (pygame). `index`: which joystick (pygame.joystick order)."""

    name = "gamepad"

    def __init__(
        self,
        config: TeleopConfig | None = None,
        *,
        index: int = 0,
        buttons: dict[str, str] | None = None,
        layout: dict[str, str] | None = None,
        z_source: str = "triggers",
    ):
        super().__init__(config)
        if z_source not in Z_SOURCES:
            raise ValueError(f"GamepadDevice z_source must be one of {Z_SOURCES}, got {z_source!r}")
        if z_source == "right_stick" and self.config.use_rotation:
            raise ValueError(
                "GamepadDevice z_source='right_stick' leaves no stick for rotation "
                "(TeleopConfig.use_rotation=True): use z_source='triggers'"
            )
        self.index = int(index)
        self.z_source = z_source
        self.buttons = validate_button_map(DEFAULT_BUTTONS if buttons is None else buttons, "gamepad")
        self.user_layout = dict(layout or {})
        self._joystick = None
        self._pygame = None
        self._connect()

    def _open(self) -> None:
        pygame = self._pygame = _import_pygame()
        try:
            if not pygame.display.get_init():
                pygame.display.init()
            pygame.joystick.init()
            pygame.event.pump()
        except pygame.error as exc:
            raise DeviceNotFound(f"SDL could not start ({exc}); {HEADLESS_HINT}") from None
        count = pygame.joystick.get_count()
        if self.index >= count:
            raise DeviceNotFound(
                f"No gamepad at index {self.index}: SDL sees {count} joystick(s). Check that the pad is "
                "plugged in or paired (`ls /dev/input/by-id/`) and that this user may read /dev/input/event* "
                f"(`sudo usermod -aG input $USER`, then log in again); {HEADLESS_HINT}."
            )
        mapping = _sdl_mapping(self.index)
        layout = dict(mapping or DEFAULT_LAYOUT)
        layout.update(self.user_layout)
        joystick = pygame.joystick.Joystick(self.index)
        joystick.init()
        self._joystick = joystick
        self.name = f"gamepad {joystick.get_name()!r}"
        self.mapping_source = "SDL game-controller database" if mapping else "DEFAULT_LAYOUT"
        self.state = GamepadState(joystick.get_instance_id(), layout, self.buttons, self.z_source)
        types = [
            pygame.JOYAXISMOTION,
            pygame.JOYBUTTONDOWN,
            pygame.JOYBUTTONUP,
            pygame.JOYHATMOTION,
            pygame.JOYBALLMOTION,
            pygame.JOYDEVICEADDED,
            pygame.JOYDEVICEREMOVED,
        ]
        for name in ("CONTROLLERDEVICEADDED", "CONTROLLERDEVICEREMOVED", "CONTROLLERDEVICEREMAPPED"):
            if hasattr(pygame, name):
                types.append(getattr(pygame, name))
        self._event_types = types

    def _read(self) -> RawInput:
        pygame = self._pygame
        try:
            events = pygame.event.get(eventtype=self._event_types)
        except pygame.error as exc:
            raise DeviceDisconnected(f"{self.name}: {exc}") from None
        now = time.monotonic()
        for event in events:
            self.state.handle(event, now)
        if self.state.removed:
            raise DeviceDisconnected(f"{self.name} was unplugged (SDL JOYDEVICEREMOVED)")
        return self.state.raw_input()

    def _close(self) -> None:
        joystick, self._joystick = self._joystick, None
        if joystick is not None and self._pygame is not None and self._pygame.joystick.get_init():
            joystick.quit()
