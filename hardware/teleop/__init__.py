"""Teleoperation devices for human-in-the-loop learning: SpaceMouse (HID), gamepad (SDL2 via pygame),
terminal keyboard, and a scripted device. See docs/teleop.md.

    from hardware.teleop import TeleopConfig, make_device
    with make_device("spacemouse", TeleopConfig(use_rotation=False)) as dev:
        cmd = dev.poll()   # TeleopCommand: action, active, events, timestamp, takeover, paused, connected

Importing this package needs only numpy: hidapi and pygame are imported when a device is opened.
"""

from __future__ import annotations

from hardware.teleop.base import (
    BUTTON_FUNCTIONS,
    DeviceDisconnected,
    DeviceNotFound,
    OperatorEvent,
    RawInput,
    TeleopCommand,
    TeleopConfig,
    TeleopDevice,
)
from hardware.teleop.gamepad import GamepadDevice
from hardware.teleop.keyboard import KeyboardDevice
from hardware.teleop.scripted import ScriptedDevice
from hardware.teleop.spacemouse import (
    KNOWN_SPACEMICE,
    UDEV_RULES,
    HIDTransport,
    SpaceMouseDevice,
    SpaceMouseState,
    list_spacemice,
    parse_report,
)

DEVICES = {"spacemouse": SpaceMouseDevice, "gamepad": GamepadDevice, "keyboard": KeyboardDevice}


def make_device(kind: str, config: TeleopConfig | None = None, **kwargs) -> TeleopDevice:
    """Open a device by name ("spacemouse", "gamepad", "keyboard"); kwargs go to its constructor."""
    if kind not in DEVICES:
        raise ValueError(f"unknown teleop device {kind!r}; available: {sorted(DEVICES)}")
    return DEVICES[kind](config, **kwargs)


__all__ = [
    "BUTTON_FUNCTIONS",
    "DEVICES",
    "KNOWN_SPACEMICE",
    "UDEV_RULES",
    "DeviceDisconnected",
    "DeviceNotFound",
    "GamepadDevice",
    "HIDTransport",
    "KeyboardDevice",
    "OperatorEvent",
    "RawInput",
    "ScriptedDevice",
    "SpaceMouseDevice",
    "SpaceMouseState",
    "TeleopCommand",
    "TeleopConfig",
    "TeleopDevice",
    "list_spacemice",
    "make_device",
    "parse_report",
]
