"""Terminal keyboard teleop: no X server, reads a TTY (stdin by default, or any terminal file descriptor)
in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts) with termios + select.

Terminals report key presses only, never releases: a motion key moves for `hold_s` after its last
byte, and a held key keeps moving through the terminal's auto-repeat (after its initial delay, typically
0.25-0.6 s, during which motion pauses). A button key (space, t, ...) fires once; repeats of it within
`debounce_s` of its previous byte are auto-repeat of the same press and fire nothing.

Keys (operator frame: x forward, y left, z up; first key of each pair is +):
    w/s x      a/d y      r/f z      arrows: up/down x, left/right y
    u/o roll   i/k pitch  j/l yaw    (only with TeleopConfig.use_rotation)
    space gripper   Enter or t takeover   y success   n failure   Backspace or x reset   p pause   e E-STOP
"""

from __future__ import annotations

import atexit
import os
import select
import sys
import time

import numpy as np

from hardware.teleop.base import (
    DeviceDisconnected,
    DeviceNotFound,
    RawInput,
    TeleopConfig,
    TeleopDevice,
    validate_button_map,
)

# key -> (axis index in x, y, z, roll, pitch, yaw; sign)
DEFAULT_MOTION_KEYS: dict[str, tuple[int, int]] = {
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "u": (3, 1), "o": (3, -1), "i": (4, 1), "k": (4, -1), "j": (5, 1), "l": (5, -1),
    "UP": (0, 1), "DOWN": (0, -1), "LEFT": (1, 1), "RIGHT": (1, -1),
}  # fmt: skip
DEFAULT_BUTTON_KEYS: dict[str, str] = {
    " ": "gripper", "\r": "takeover", "\n": "takeover", "t": "takeover", "y": "success", "n": "failure",
    "\x7f": "reset", "\x08": "reset", "x": "reset", "p": "pause", "e": "estop",
}  # fmt: skip
_ARROWS = {"A": "UP", "B": "DOWN", "C": "RIGHT", "D": "LEFT"}


def decode_keys(data: bytes) -> list[str]:
    """Key names in a chunk of terminal input: printable and control characters as themselves (letters
    lower-cased), arrow keys as UP/DOWN/LEFT/RIGHT; other escape sequences are dropped."""
    keys: list[str] = []
    text = data.decode("latin-1")
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            if i + 1 < len(text) and text[i + 1] in "[O":
                j = i + 2
                while j < len(text) and not ("\x40" <= text[j] <= "\x7e"):
                    j += 1  # parameter bytes
                if j < len(text) and text[j] in _ARROWS and j == i + 2:
                    keys.append(_ARROWS[text[j]])
                i = j + 1
            else:
                i += 1  # a lone Escape
            continue
        keys.append(ch.lower())
        i += 1
    return keys


class KeyboardDevice(TeleopDevice):
    """Keyboard on a terminal. `fd`: the terminal's file descriptor (default: stdin); `hold_s`: how long a
    motion key press lasts; `debounce_s`: auto-repeat window of button keys; `motion_keys` / `button_keys`
    replace the default maps (see the module docstring)."""

    name = "keyboard"

    def __init__(
        self,
        config: TeleopConfig | None = None,
        *,
        fd: int | None = None,
        hold_s: float = 0.15,
        debounce_s: float = 0.7,
        motion_keys: dict[str, tuple[int, int]] | None = None,
        button_keys: dict[str, str] | None = None,
    ):
        super().__init__(config)
        for label, value in (("hold_s", hold_s), ("debounce_s", debounce_s)):
            if not (np.isfinite(value) and 0 < value <= 5):
                raise ValueError(f"KeyboardDevice {label} must be in (0, 5] seconds, got {value!r}")
        self.hold_s, self.debounce_s = float(hold_s), float(debounce_s)
        self.motion_keys = dict(DEFAULT_MOTION_KEYS if motion_keys is None else motion_keys)
        for key, (axis, sign) in self.motion_keys.items():
            if axis not in range(6) or sign not in (1, -1):
                raise ValueError(
                    f"keyboard motion key {key!r}: want (axis 0..5, sign +-1), got {(axis, sign)}"
                )
        self.button_keys = validate_button_map(
            DEFAULT_BUTTON_KEYS if button_keys is None else button_keys, "keyboard"
        )
        self._fd_arg = fd
        self.fd: int | None = None
        self._saved_attrs = None
        self._connect()

    def _open(self) -> None:
        try:
            import termios
        except ImportError:
            raise DeviceNotFound("keyboard teleop needs a POSIX terminal (the termios module)") from None
        if self._fd_arg is not None:
            fd = self._fd_arg
        else:
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                fd = -1
        if fd < 0 or not os.isatty(fd):
            what = "stdin" if self._fd_arg is None else f"file descriptor {fd}"
            raise DeviceNotFound(
                f"keyboard teleop needs a terminal, but {what} is not a TTY (piped input, a service without a "
                "terminal, or pytest capturing stdin). Run it in an interactive terminal (over ssh: ssh -t), "
                "or pass fd= of a terminal/pty; use the SpaceMouse or gamepad for unattended set-ups."
            )
        self.fd = fd
        self.name = f"keyboard ({os.ttyname(fd) if self._fd_arg is not None else 'stdin'})"
        saved = termios.tcgetattr(fd)
        mode = termios.tcgetattr(fd)
        mode[3] &= ~(termios.ECHO | termios.ICANON)  # lflag: keep ISIG, so Ctrl-C still works
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        self._saved_attrs = saved
        atexit.register(self._restore_terminal)
        self._last_seen: dict[str, float] = {}
        self._pressed: list[str] = []
        self._last_input: float | None = None

    def _restore_terminal(self) -> None:
        import termios

        saved, self._saved_attrs = self._saved_attrs, None
        if saved is None:
            return
        atexit.unregister(self._restore_terminal)
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
        except (termios.error, OSError):
            pass  # the terminal is gone

    def _close(self) -> None:
        self._restore_terminal()

    def _read(self) -> RawInput:
        data = b""
        while True:
            readable, _, _ = select.select([self.fd], [], [], 0)
            if not readable:
                break
            chunk = os.read(self.fd, 1024)  # OSError (EIO: terminal hung up) propagates
            if not chunk:
                raise DeviceDisconnected(f"{self.name}: end of input (terminal closed)")
            data += chunk
        now = time.monotonic()
        if data:
            self._last_input = now
        for key in decode_keys(data):
            if key in self.button_keys:
                fn = self.button_keys[key]
                previous = self._last_seen.get("fn:" + fn)
                if previous is None or now - previous > self.debounce_s:
                    self._pressed.append(fn)
                self._last_seen["fn:" + fn] = now
            elif key in self.motion_keys:
                self._last_seen[key] = now
        axes = np.zeros(6)
        for key, (axis, sign) in self.motion_keys.items():
            seen = self._last_seen.get(key)
            if seen is not None and now - seen < self.hold_s:
                axes[axis] += sign
        held = frozenset(
            fn
            for fn in set(self.button_keys.values())
            if (seen := self._last_seen.get("fn:" + fn)) is not None and now - seen < self.hold_s
        )
        pressed, self._pressed = tuple(self._pressed), []
        return RawInput(np.clip(axes, -1.0, 1.0), held, pressed, self._last_input)
