"""Teleop devices: config, command logic, SpaceMouse HID parsing, gamepad through SDL, keyboard through a pty.

What is real and what is synthetic:
- SpaceMouse: the one fake is the byte transport (no device here); the reports it hands over are real
  HID report bytes and go through the real parser, reader and command logic.
- Gamepad: real pygame/SDL. Where SDL's virtual-joystick API is reachable (pygame's bundled SDL), a
  virtual pad is attached and driven by SDL itself; events posted to pygame's real queue cover the rest.
- Keyboard: a real pseudo-terminal; bytes are written to its master side.
"""

from __future__ import annotations

import ast
import ctypes
import glob
import io
import logging
import os
import queue
import select
import struct
import subprocess
import sys
import termios
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from controllers.actions import ActionSpec
from hardware.teleop import (
    DeviceNotFound,
    GamepadDevice,
    KeyboardDevice,
    OperatorEvent,
    ScriptedDevice,
    SpaceMouseDevice,
    SpaceMouseState,
    TeleopCommand,
    TeleopConfig,
    make_device,
    parse_report,
)
from hardware.teleop.gamepad import GamepadState
from hardware.teleop.keyboard import decode_keys
from hardware.teleop.spacemouse import UDEV_RULES, raw_to_operator

ROOT = Path(__file__).resolve().parents[1]
PIP = "pip install 'robot_rl[teleop]'"
E = OperatorEvent


def _close(a, b, tol=1e-5):
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol)


# -- TeleopConfig ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("translation_scale", 0.0),
        ("translation_scale", float("nan")),
        ("rotation_scale", -1.0),
        ("rotation_scale", 11.0),
        ("deadzone", -0.1),
        ("deadzone", 0.95),
        ("deadzone", "0.1"),
        ("use_rotation", 1),
        ("use_gripper", "yes"),
        ("takeover_latch", None),
        ("gripper_mode", "absolute"),
        ("axis_map", (0, 1, 1)),
        ("axis_map", (0, 1)),
        ("axis_map", ("0", 1, 2)),
        ("axis_signs", (1, 0, 1)),
        ("axis_signs", (1, 1)),
        ("rotation_signs", (2, 1, 1)),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"TeleopConfig.{field}"):
        TeleopConfig(**{field: value})


def test_config_layout_matches_action_spec():
    for rotation in (False, True):
        for gripper in (False, True):
            spec = ActionSpec(rotation=rotation, gripper=gripper)
            cfg = TeleopConfig.for_action_spec(spec, deadzone=0.2)
            assert cfg.dim == spec.dim and cfg.names == spec.names and cfg.deadzone == 0.2
    cfg = TeleopConfig(axis_map=[1, 0, 2], axis_signs=[1, -1, 1])
    assert cfg.axis_map == (1, 0, 2) and cfg.axis_signs == (1, -1, 1)  # lists (from YAML) become tuples


def test_package_imports_no_optional_library_and_respects_layering():
    code = "import sys, hardware.teleop; print('hid' in sys.modules, 'pygame' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
    for path in (ROOT / "hardware" / "teleop").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("robot_rl", "sim"), f"{path.name} imports {name}"


# -- SpaceMouse: HID reports -------------------------------------------------------------------------------


def _trans(x, y, z):  # legacy report id 1: translation only
    return bytes([1]) + struct.pack("<3h", x, y, z)


def _rot(rx, ry, rz):  # legacy report id 2
    return bytes([2]) + struct.pack("<3h", rx, ry, rz)


def _both(x, y, z, rx, ry, rz):  # newer devices: report id 1 with 6 x int16
    return bytes([1]) + struct.pack("<6h", x, y, z, rx, ry, rz)


def _buttons(mask, nbytes=2):
    return bytes([3]) + mask.to_bytes(nbytes, "little")


def test_parse_report_legacy_format_hand_computed():
    s0 = SpaceMouseState()
    # 100 = 0x0064, -350 = 0xfea2, 175 = 0x00af, little-endian
    report = bytes([0x01, 0x64, 0x00, 0xA2, 0xFE, 0xAF, 0x00])
    s1 = parse_report(report, s0)
    assert s1.translation == (100, -350, 175) and s1.rotation == (0, 0, 0) and s1.buttons == 0
    assert s0 == SpaceMouseState()  # pure: the input state is untouched
    s2 = parse_report(bytes([0x02, 0x23, 0x00, 0x46, 0x00, 0x51, 0xFF]), s1)  # 35, 70, -175
    assert s2.translation == (100, -350, 175) and s2.rotation == (35, 70, -175)
    assert parse_report(_trans(-32768, 32767, 0), s0).translation == (-32768, 32767, 0)


def test_parse_report_combined_format_and_buttons():
    s = parse_report(_both(1, -2, 3, -4, 5, -6), SpaceMouseState(buttons=1))
    assert s.translation == (1, -2, 3) and s.rotation == (-4, 5, -6) and s.buttons == 1
    assert parse_report(bytes([3, 0b10, 0]), s).buttons == 2
    assert parse_report(bytes([3, 0x01, 0x80, 0x02]), s).buttons == 0x028001  # multi-byte mask (Pro models)
    for junk in (b"", bytes([1, 5]), bytes([2, 1, 2, 3]), bytes([0x17, 80]), bytes([3])):
        assert parse_report(junk, s) is s  # unknown or short: unchanged


def test_raw_axes_to_operator_frame_signs_and_clipping():
    # device frame: x right, y towards the operator, z down -> operator frame: x forward, y left, z up
    push_forward = raw_to_operator(SpaceMouseState(translation=(0, -350, 0)))
    push_left = raw_to_operator(SpaceMouseState(translation=(-350, 0, 0)))
    lift = raw_to_operator(SpaceMouseState(translation=(0, 0, -175)))
    assert _close(push_forward, [1, 0, 0, 0, 0, 0])
    assert _close(push_left, [0, 1, 0, 0, 0, 0])
    assert _close(lift, [0, 0, 0.5, 0, 0, 0])
    rot = raw_to_operator(SpaceMouseState(rotation=(35, 70, -175)))
    assert _close(rot, [0, 0, 0, -0.2, -0.1, 0.5])  # same proper rotation: (roll, pitch, yaw) = -(ry, rx, rz)
    over = raw_to_operator(SpaceMouseState(translation=(500, -1000, 0), rotation=(0, 0, 400)))
    assert _close(over, [1, -1, 0, 0, 0, -1])  # clipped to [-1, 1]


# -- SpaceMouse: device logic over a byte transport ---------------------------------------------------------


class FakeHID:
    """Byte-level stand-in for hidapi (the only fake: no device exists here). Reports are real bytes."""

    description = "fake SpaceMouse"

    def __init__(self):
        self.reports: deque[bytes] = deque()
        self.unplugged = False
        self.opens = self.closes = 0

    def open(self):
        if self.unplugged:
            raise OSError(2, "No such device")
        self.opens += 1

    def read(self, timeout_ms):
        if self.unplugged:
            raise OSError(5, "read error")
        return self.reports.popleft() if self.reports else b""

    def close(self):
        self.closes += 1


class ThreadedFakeHID(FakeHID):
    def __init__(self):
        super().__init__()
        self.q: queue.Queue[bytes] = queue.Queue()

    def read(self, timeout_ms):
        if self.unplugged:
            raise OSError(5, "read error")
        try:
            return self.q.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            return b""


def _spacemouse(cfg=None, **kw):
    hid = FakeHID()
    return SpaceMouseDevice(cfg or TeleopConfig(), transport=hid, threaded=False, **kw), hid


def test_spacemouse_action_hand_computed_with_deadzone():
    dev, hid = _spacemouse(TeleopConfig(deadzone=0.1))
    hid.reports.append(_trans(100, -350, 175))
    cmd = dev.poll()
    # operator (x, y, z) = (350, -100, -175) / 350 = (1, -0.285714, -0.5); deadzone 0.1 rescales |v| -> (|v|-0.1)/0.9
    assert _close(cmd.action, [1.0, -0.206349, -0.444444, 1.0])
    assert cmd.action.dtype == np.float32 and cmd.action.shape == (4,)
    assert cmd.active and cmd.events == [] and cmd.connected
    hid.reports.append(_trans(20, -30, 10))  # all below 0.1 * 350 = 35 counts
    cmd = dev.poll()
    assert _close(cmd.action, [0, 0, 0, 1]) and not cmd.active


def test_spacemouse_scale_clip_rotation_and_frame_mapping():
    dev, hid = _spacemouse(
        TeleopConfig(deadzone=0.0, translation_scale=2.0, rotation_scale=0.5, use_rotation=True)
    )
    hid.reports.append(_both(0, -250, 0, 35, 70, -175))
    cmd = dev.poll()
    assert _close(cmd.action, [1.0, 0, 0, -0.1, -0.05, 0.25, 1.0])  # 2 * 250/350 = 1.43 -> clipped to 1
    assert cmd.action.shape == (7,)

    # operator behind-left: robot x = operator y, robot y = -operator x (90 degrees about z, a proper rotation)
    cfg = TeleopConfig(
        deadzone=0.0, use_rotation=True, use_gripper=False, axis_map=(1, 0, 2), axis_signs=(1, -1, 1)
    )
    dev, hid = _spacemouse(cfg)
    hid.reports.append(_both(-70, -35, -175, -35, -70, 0))  # operator: t = (0.1, 0.2, 0.5), r = (0.2, 0.1, 0)
    assert _close(dev.poll().action, [0.2, -0.1, 0.5, 0.1, -0.2, 0.0])

    # a mirror (det -1): rotations get the extra -1, so the mapping stays physically consistent
    cfg = TeleopConfig(deadzone=0.0, use_rotation=True, use_gripper=False, axis_signs=(1, 1, -1))
    dev, hid = _spacemouse(cfg)
    hid.reports.append(_both(-70, -35, -175, -35, -70, 0))
    assert _close(dev.poll().action, [0.1, 0.2, -0.5, -0.2, -0.1, 0.0])


def test_spacemouse_rotation_ignored_when_not_in_layout():
    dev, hid = _spacemouse(TeleopConfig(deadzone=0.0))
    hid.reports.append(_rot(300, 0, 0))
    cmd = dev.poll()
    assert _close(cmd.action, [0, 0, 0, 1]) and not cmd.active


def test_spacemouse_buttons_are_edge_triggered():
    dev, hid = _spacemouse()
    hid.reports.extend([_buttons(0b10)] * 5)  # right button held over five reports
    cmd = dev.poll()
    assert cmd.events == [E.TAKEOVER] and cmd.takeover and cmd.active
    hid.reports.extend([_buttons(0b10), _trans(0, 0, 0)])
    cmd = dev.poll()
    assert cmd.events == [] and cmd.takeover  # still held: no second event
    hid.reports.append(_buttons(0))
    assert dev.poll().takeover  # latched on after release
    hid.reports.extend([_buttons(0b10), _buttons(0)])  # press and release between two polls
    cmd = dev.poll()
    assert cmd.events == [E.TAKEOVER] and not cmd.takeover and not cmd.active

    # left = gripper toggle: one press flips it, holding does not flip it again
    hid.reports.extend([_buttons(0b01), _buttons(0b01)])
    assert dev.poll().action[-1] == -1.0
    hid.reports.append(_buttons(0))
    assert dev.poll().action[-1] == -1.0
    hid.reports.extend([_buttons(0b01), _buttons(0)])
    assert dev.poll().action[-1] == 1.0


def test_spacemouse_hold_gripper_and_custom_buttons():
    buttons = {0: "gripper", 1: OperatorEvent.SUCCESS, 9: "reset"}
    dev, hid = _spacemouse(TeleopConfig(gripper_mode="hold"), buttons=buttons)
    hid.reports.append(_buttons(0b1))
    assert dev.poll().action[-1] == -1.0  # closed while held
    hid.reports.append(_buttons(0))
    assert dev.poll().action[-1] == 1.0
    hid.reports.extend([_buttons(0b10), _buttons(1 << 9 | 0b10)])
    assert dev.poll().events == [E.SUCCESS, E.RESET]
    with pytest.raises(ValueError, match="bound to 'fly'"):
        _spacemouse(buttons={0: "fly"})


def test_spacemouse_drains_queued_reports_latest_wins():
    dev, hid = _spacemouse(TeleopConfig(deadzone=0.0))
    for i in range(200):  # a burst far longer than one poll period's worth
        hid.reports.append(_trans(0, -i, 0))
    hid.reports.append(_trans(0, -175, 0))
    cmd = dev.poll()
    assert not hid.reports
    assert _close(cmd.action[:3], [0.5, 0, 0])


def test_spacemouse_unplug_mid_stream_then_reconnect(caplog):
    dev, hid = _spacemouse(TeleopConfig(deadzone=0.0, takeover_latch=True))
    hid.reports.append(_trans(0, -350, 0))
    assert dev.poll().takeover
    hid.reports.append(_trans(0, -350, 0))
    hid.unplugged = True
    with caplog.at_level(logging.WARNING, logger="hardware.teleop"):
        cmds = [dev.poll() for _ in range(3)]  # must not raise
    for cmd in cmds:
        assert isinstance(cmd, TeleopCommand)
        assert not cmd.active and not cmd.takeover and not cmd.connected and cmd.events == []
        assert cmd.action.shape == (4,) and not cmd.action.any()
    assert dev.connected is False
    assert len([r for r in caplog.records if "disconnected" in r.getMessage()]) == 1  # logged once
    assert dev.reconnect() is False and isinstance(dev.last_error, DeviceNotFound)
    hid.unplugged = False
    assert dev.reconnect() is True and dev.connected and hid.opens == 2
    hid.reports.append(_trans(0, 0, -350))
    cmd = dev.poll()
    assert cmd.connected and _close(cmd.action[:3], [0, 0, 1])
    dev.close()
    assert not dev.connected and hid.closes >= 2


def test_spacemouse_reader_thread_timestamps_and_unplug():
    hid = ThreadedFakeHID()
    with SpaceMouseDevice(TeleopConfig(deadzone=0.0), transport=hid, threaded=True) as dev:
        t_sent = time.monotonic()
        for y in (-35, -70, -105, -140):
            hid.q.put(_trans(0, y, 0))
        hid.q.put(_buttons(0b10))
        deadline = time.monotonic() + 5
        events = []
        while time.monotonic() < deadline:
            cmd = dev.poll()
            events += cmd.events
            if _close(cmd.action[0], 0.4) and events:
                break
            time.sleep(0.005)
        assert _close(cmd.action[:3], [0.4, 0, 0]) and events == [E.TAKEOVER]
        assert t_sent <= cmd.timestamp <= time.monotonic()  # when the reader got the report
        hid.unplugged = True
        deadline = time.monotonic() + 5
        while dev.connected and time.monotonic() < deadline:
            cmd = dev.poll()
            time.sleep(0.005)
        assert not dev.connected and not cmd.active and not cmd.action.any()
    assert dev._thread is None


def test_spacemouse_missing_hidapi_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)  # import hid -> ImportError
    with pytest.raises(DeviceNotFound, match=r"hidapi.*pip install 'robot_rl\[teleop\]'"):
        SpaceMouseDevice()
    with pytest.raises(DeviceNotFound, match="pip install"):
        make_device("spacemouse")


def test_spacemouse_not_plugged_in_message_has_udev_rules():
    hid = pytest.importorskip("hid")
    if not hasattr(hid, "device"):
        pytest.skip("a `hid` module other than hidapi is installed")
    from hardware.teleop.spacemouse import list_spacemice

    if list_spacemice():
        pytest.skip("a SpaceMouse is plugged in")
    with pytest.raises(DeviceNotFound) as info:
        SpaceMouseDevice()
    msg = str(info.value)
    assert 'ATTRS{idVendor}=="256f"' in msg and 'ATTRS{idVendor}=="046d"' in msg and "udevadm" in msg
    assert "hidraw" in UDEV_RULES


# -- Gamepad (pygame / SDL2) --------------------------------------------------------------------------------


@pytest.fixture
def pygame_dummy(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    pygame = pytest.importorskip("pygame")
    pygame.display.init()
    pygame.joystick.init()
    pygame.event.clear()
    yield pygame
    pygame.quit()


class VirtualPad:
    """A virtual joystick of SDL's own (SDL_JoystickAttachVirtual), in the SDL library pygame uses."""

    def __init__(self, pygame):
        libs = glob.glob(
            os.path.join(os.path.dirname(pygame.__file__), os.pardir, "pygame.libs", "libSDL2-2*")
        )
        if not libs:
            pytest.skip("pygame's bundled SDL2 library not found (virtual joystick unreachable)")
        self.sdl = sdl = ctypes.CDLL(libs[0])
        if not hasattr(sdl, "SDL_JoystickAttachVirtual"):
            pytest.skip("SDL has no virtual-joystick API")
        sdl.SDL_JoystickFromInstanceID.restype = ctypes.c_void_p
        sdl.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
        sdl.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
        self.index = None

    def attach(self):
        self.index = self.sdl.SDL_JoystickAttachVirtual(1, 6, 11, 1)  # a game controller: 6 axes, 11 buttons
        assert self.index >= 0

    def detach(self):
        if self.index is not None:
            self.sdl.SDL_JoystickDetachVirtual(self.index)
            self.index = None

    def axis(self, instance_id, axis, value):
        joy = self.sdl.SDL_JoystickFromInstanceID(instance_id)
        assert self.sdl.SDL_JoystickSetVirtualAxis(joy, axis, int(np.clip(value * 32767, -32768, 32767))) == 0

    def button(self, instance_id, button, down):
        joy = self.sdl.SDL_JoystickFromInstanceID(instance_id)
        assert self.sdl.SDL_JoystickSetVirtualButton(joy, button, int(down)) == 0


def test_gamepad_events_through_real_pygame_queue(pygame_dummy):
    pygame = pygame_dummy
    layout = {"a": "b0", "b": "b1", "x": "b2", "start": "b7", "leftx": "a0", "lefty": "a1",
              "lefttrigger": "a2", "righttrigger": "+a5", "rightx": "a3", "righty": "a4~"}  # fmt: skip
    buttons = {"a": "gripper", "b": "takeover", "x": "success", "start": "pause"}
    state = GamepadState(instance_id=4242, layout=layout, buttons=buttons)
    assert _close(state.raw_input().axes, np.zeros(6))  # untouched triggers read as released

    post = pygame.event.post
    post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=4242, axis=1, value=-0.8))  # stick forward
    post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=4242, axis=0, value=0.5))  # stick right
    post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=4242, axis=2, value=0.0))  # left trigger half
    post(
        pygame.event.Event(pygame.JOYAXISMOTION, instance_id=4242, axis=5, value=1.0)
    )  # right trigger, "+a5"
    post(pygame.event.Event(pygame.JOYAXISMOTION, instance_id=7, axis=1, value=1.0))  # another pad: ignored
    for _ in range(3):
        post(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=4242, button=1))  # held B: one press
    post(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=4242, button=2))
    post(pygame.event.Event(pygame.JOYBUTTONUP, instance_id=4242, button=2))
    post(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=4242, button=10))  # unbound button
    for event in pygame.event.get(eventtype=[pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP]):
        state.handle(event, now=123.0)
    raw = state.raw_input()
    assert _close(raw.axes[:3], [0.8, -0.5, 1.0 - 0.5])  # z = right trigger - left trigger
    assert raw.pressed == ("takeover", "success") and raw.held == frozenset({"takeover"})
    assert raw.timestamp == 123.0 and state.raw_input().pressed == ()  # presses are consumed once

    post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=7))
    post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=4242))
    for event in pygame.event.get(eventtype=pygame.JOYDEVICEREMOVED):
        state.handle(event, now=124.0)
    assert state.removed


def test_gamepad_virtual_pad_end_to_end(pygame_dummy, caplog):
    pygame = pygame_dummy
    if pygame.joystick.get_count():
        pytest.skip("a real joystick is connected")
    with pytest.raises(DeviceNotFound, match="SDL_VIDEODRIVER=dummy"):
        GamepadDevice()
    pad = VirtualPad(pygame)
    pad.attach()
    try:
        dev = GamepadDevice(TeleopConfig(deadzone=0.1, use_rotation=True))
        assert dev.mapping_source == "SDL game-controller database"
        iid = dev.state.instance_id
        cmd = dev.poll()
        assert not cmd.active and _close(cmd.action, [0, 0, 0, 0, 0, 0, 1])  # triggers at rest: no z

        # SDL game-controller order: axes leftx lefty rightx righty lefttrigger righttrigger; A B X Y Back ...
        pad.axis(iid, 1, -1.0)  # left stick fully forward -> +x
        pad.axis(iid, 0, 0.55)  # left stick right -> -y, (0.55 - 0.1) / 0.9 = 0.5
        pad.axis(iid, 5, 1.0)  # right trigger pulled -> +z
        pad.axis(iid, 2, -1.0)  # right stick left -> +yaw
        pad.button(iid, 0, True)  # A: gripper toggle
        pad.button(iid, 1, True)  # B: takeover
        t_before = time.monotonic()
        cmd = dev.poll()
        assert _close(cmd.action, [1.0, -0.5, 1.0, 0.0, 0.0, 1.0, -1.0], tol=1e-3)
        assert cmd.events == [E.TAKEOVER] and cmd.takeover and cmd.active
        assert t_before <= cmd.timestamp <= time.monotonic()
        cmd = dev.poll()
        assert cmd.events == [] and cmd.action[-1] == -1.0  # still held: no new events

        pad.button(iid, 2, True)  # X: success
        pad.button(iid, 6, True)  # Start: pause
        pygame.event.post(pygame.event.Event(pygame.JOYBUTTONDOWN, instance_id=iid, joy=0, button=4))  # Back
        cmd = dev.poll()
        assert cmd.events == [E.SUCCESS, E.PAUSE, E.RESET] and cmd.paused

        with caplog.at_level(logging.WARNING, logger="hardware.teleop"):
            pad.detach()  # hot-unplug
            cmds = [dev.poll(), dev.poll()]
        assert not dev.connected and all(
            not c.active and not c.action.any() and not c.connected for c in cmds
        )
        assert len([r for r in caplog.records if "disconnected" in r.getMessage()]) == 1
        assert dev.reconnect() is False
        pad.attach()
        assert dev.reconnect() is True and dev.connected
        pad.axis(dev.state.instance_id, 1, 1.0)  # stick back -> -x
        assert _close(dev.poll().action[:3], [-1, 0, 0], tol=1e-3)
        dev.close()
    finally:
        pad.detach()


def test_gamepad_rejects_right_stick_z_with_rotation():
    with pytest.raises(ValueError, match="z_source"):
        GamepadDevice(TeleopConfig(use_rotation=True), z_source="right_stick")


def test_gamepad_missing_pygame_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(DeviceNotFound, match=r"pygame.*pip install 'robot_rl\[teleop\]'"):
        GamepadDevice()


# -- Keyboard (through a real pseudo-terminal) --------------------------------------------------------------


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def _type(master, slave, data: bytes):
    os.write(master, data)
    assert select.select([slave], [], [], 2.0)[0], "pty delivered nothing"
    time.sleep(0.01)  # let the whole chunk arrive


def test_decode_keys():
    assert decode_keys(b"wA \r\x1b[A\x1b[1;5C\x1bOD\x1b\x7f") == ["w", "a", " ", "\r", "UP", "LEFT", "\x7f"]


def test_keyboard_keys_to_actions_and_hold_window(pty_pair):
    master, slave = pty_pair
    with KeyboardDevice(TeleopConfig(use_rotation=True), fd=slave, hold_s=0.3) as kb:
        _type(master, slave, b"w")
        cmd = kb.poll()
        assert _close(cmd.action, [1, 0, 0, 0, 0, 0, 1]) and cmd.active
        assert _close(kb.poll().action, [1, 0, 0, 0, 0, 0, 1])  # held for hold_s: terminals send no key-up
        time.sleep(0.35)
        cmd = kb.poll()
        assert _close(cmd.action, [0, 0, 0, 0, 0, 0, 1]) and not cmd.active
        _type(master, slave, b"adfi")  # a and d cancel
        assert _close(kb.poll().action, [0, 0, -1, 0, 1, 0, 1])
        time.sleep(0.35)
        _type(master, slave, b"\x1b[B\x1b[DrJ")  # arrows down and left, r, shifted J
        assert _close(kb.poll().action, [-1, 1, 1, 0, 0, 1, 1])


def test_keyboard_operator_events(pty_pair):
    master, slave = pty_pair
    kb = KeyboardDevice(TeleopConfig(), fd=slave, debounce_s=0.05)
    _type(master, slave, b"   ")  # one press of space with auto-repeat: a single gripper toggle
    cmd = kb.poll()
    assert cmd.action[-1] == -1.0 and cmd.events == []
    _type(master, slave, b"t")
    cmd = kb.poll()
    assert cmd.events == [E.TAKEOVER] and cmd.takeover and cmd.active
    time.sleep(0.06)
    _type(master, slave, b"\r")
    cmd = kb.poll()
    assert cmd.events == [E.TAKEOVER] and not cmd.takeover
    _type(master, slave, b"ynp")
    cmd = kb.poll()
    assert cmd.events == [E.SUCCESS, E.FAILURE, E.PAUSE] and cmd.paused
    for key in (b"x", b"\x7f"):
        time.sleep(0.06)
        _type(master, slave, key)
        assert kb.poll().events == [E.RESET]
    kb.close()


def test_keyboard_restores_terminal_and_handles_hangup(pty_pair, caplog):
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    kb = KeyboardDevice(fd=slave)
    during = termios.tcgetattr(slave)
    assert not during[3] & (termios.ICANON | termios.ECHO) and during[3] & termios.ISIG  # Ctrl-C still works
    kb.close()
    assert termios.tcgetattr(slave) == before

    kb = KeyboardDevice(fd=slave)
    os.close(master)  # the terminal goes away
    with caplog.at_level(logging.WARNING, logger="hardware.teleop"):
        cmd = kb.poll()
    assert not cmd.active and not cmd.connected and not kb.connected and not cmd.action.any()
    assert any("disconnected" in r.getMessage() for r in caplog.records)
    kb.close()


def test_keyboard_needs_a_tty(monkeypatch):
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceNotFound, match="not a TTY"):
            KeyboardDevice(fd=r)
    finally:
        os.close(r)
        os.close(w)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(DeviceNotFound, match="stdin is not a TTY"):
        make_device("keyboard")


# -- Shared command logic (through the scripted device) -----------------------------------------------------


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _scripted(sequence, **cfg):
    clock = Clock()
    return ScriptedDevice(sequence, TeleopConfig(**cfg), clock=clock), clock


def test_takeover_latch_semantics():
    fwd, still = (0.5, 0, 0), (0, 0, 0)
    seq = [
        (1.0, fwd, ()),  # first motion latches takeover
        (2.0, still, ()),  # let go: still taken over
        (3.0, fwd, ("takeover",)),  # button while moving: released, no re-latch until let go
        (3.5, fwd, ()),
        (4.0, still, ()),
        (5.0, fwd, ()),  # moves again: latches again
    ]
    dev, clock = _scripted(seq, takeover_latch=True, deadzone=0.0)
    expected = {  # time: (active, takeover, events)
        0.5: (False, False, []),
        1.0: (True, True, [E.TAKEOVER]),
        2.0: (True, True, []),
        3.0: (True, False, [E.TAKEOVER]),  # active: moving, and the takeover button is held
        3.5: (True, False, []),  # moving (not latched)
        4.0: (False, False, []),
        5.0: (True, True, [E.TAKEOVER]),
    }
    for t, (active, takeover, events) in expected.items():
        clock.t = 100.0 + t
        cmd = dev.poll()
        assert (cmd.active, cmd.takeover, cmd.events) == (active, takeover, events), t
    assert dev.finished and cmd.timestamp == 105.0  # the input's time, for latency measurements


def test_no_latch_active_only_while_moving_and_pause_toggles():
    # times are multiples of 1/4 (exact in binary floating point)
    seq = [
        (0.25, (0, 0, 0.3), ()),
        (0.5, (), ()),
        (0.75, (), ("pause",)),
        (1.0, (), ()),
        (1.25, (), ("pause",)),
    ]
    dev, clock = _scripted(seq, deadzone=0.2, use_gripper=False)
    clock.t += 0.25
    cmd = dev.poll()
    assert cmd.active and not cmd.takeover and _close(cmd.action, [0, 0, 0.125])
    clock.t += 0.25
    assert not dev.poll().active
    clock.t += 0.25
    cmd = dev.poll()
    assert cmd.events == [E.PAUSE] and cmd.paused and not cmd.active
    clock.t += 0.5  # two entries between polls: release and press again, nothing lost
    cmd = dev.poll()
    assert cmd.events == [E.PAUSE] and not cmd.paused


def test_gripper_modes_and_sync():
    seq = [(0.25, (), ("gripper",)), (0.5, (), ()), (0.75, (), ("gripper",))]
    for mode, expected in (("hold", [-1.0, 1.0, -1.0]), ("toggle", [-1.0, -1.0, 1.0])):
        dev, clock = _scripted(seq, gripper_mode=mode)
        grip = []
        for i in range(3):
            clock.t += 0.25
            cmd = dev.poll()
            grip.append(float(cmd.action[-1]))
            assert cmd.active == (i != 1)  # pressing or holding the gripper button is human input
        assert grip == expected, mode
    dev.set_gripper(is_open=False)
    assert dev.poll().action[-1] == -1.0


def test_scripted_device_validates_its_script():
    with pytest.raises(ValueError, match="non-decreasing"):
        ScriptedDevice([(1.0, (), ()), (0.5, (), ())])
    with pytest.raises(ValueError, match="buttons must be among"):
        ScriptedDevice([(0.0, (), ("jump",))])
    with pytest.raises(ValueError, match="unknown teleop device"):
        make_device("joystick")


def test_every_device_has_an_estop_button():
    from hardware.teleop.gamepad import DEFAULT_BUTTONS as GAMEPAD_BUTTONS
    from hardware.teleop.keyboard import DEFAULT_BUTTON_KEYS as KEYS

    assert GAMEPAD_BUTTONS["guide"] == "estop"
    assert KEYS["e"] == "estop"
    # SpaceMouse: both main buttons at once, whatever they are bound to (every model has those two).
    dev, hid = _spacemouse()
    hid.reports.extend([_buttons(0b01), _buttons(0b11), _buttons(0)])
    assert E.ESTOP in dev.poll().events
    hid.reports.extend([_buttons(1 << 9 | 0b10)])  # another button with one main button: not an e-stop
    assert E.ESTOP not in dev.poll().events


def test_keyboard_estop_key(pty_pair):
    master, slave = pty_pair
    kb = KeyboardDevice(TeleopConfig(), fd=slave, debounce_s=0.05)
    _type(master, slave, b"e")
    assert kb.poll().events == [E.ESTOP]
    kb.close()


def test_a_deadman_button_is_reported_while_held():
    from hardware.teleop import ScriptedDevice

    clock = [0.0]
    dev = ScriptedDevice([(0.0, [], ["deadman"]), (1.0, [], [])], TeleopConfig(), clock=lambda: clock[0])
    assert dev.poll().deadman
    clock[0] = 1.5
    command = dev.poll()
    assert not command.deadman and command.events == []
