"""A device that replays a script of inputs through the shared command logic: for tests, demos without
hardware, and latency measurements (each command's timestamp is the scripted input's time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from hardware.teleop.base import BUTTON_FUNCTIONS, RawInput, TeleopConfig, TeleopDevice


class ScriptedDevice(TeleopDevice):
    """sequence: (t, axes, buttons) entries, t in seconds after the device was opened (non-decreasing),
    axes up to six operator-frame values in [-1, 1] (x, y, z, roll, pitch, yaw; missing ones are 0),
    buttons the functions held from then on (names of base.BUTTON_FUNCTIONS). poll() applies every entry
    whose time has come, so presses between polls are not lost. `clock` defaults to time.monotonic."""

    name = "scripted"

    def __init__(
        self,
        sequence: Iterable[tuple[float, Iterable[float], Iterable[str]]],
        config: TeleopConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(config)
        entries = []
        last_t = -np.inf
        for i, (t, axes, buttons) in enumerate(sequence):
            axes = np.asarray(list(axes), dtype=np.float64)
            buttons = frozenset(buttons)
            if not (np.isfinite(t) and t >= last_t):
                raise ValueError(
                    f"ScriptedDevice entry {i}: times must be finite and non-decreasing, got {t!r}"
                )
            if axes.size > 6 or not np.all(np.isfinite(axes)):
                raise ValueError(f"ScriptedDevice entry {i}: up to six finite axes, got {axes.tolist()}")
            if not buttons <= set(BUTTON_FUNCTIONS):
                raise ValueError(
                    f"ScriptedDevice entry {i}: buttons must be among {BUTTON_FUNCTIONS}, got {buttons}"
                )
            entries.append((float(t), np.pad(axes, (0, 6 - axes.size)), buttons))
            last_t = t
        self.sequence = entries
        self.clock = clock
        self._connect()

    @property
    def finished(self) -> bool:
        return self._next >= len(self.sequence)

    def _open(self) -> None:
        self._t0 = self.clock()
        self._next = 0
        self._axes = np.zeros(6)
        self._held: frozenset[str] = frozenset()
        self._last_input: float | None = None

    def _read(self) -> RawInput:
        elapsed = self.clock() - self._t0
        pressed: list[str] = []
        while self._next < len(self.sequence) and self.sequence[self._next][0] <= elapsed:
            t, axes, held = self.sequence[self._next]
            pressed += sorted(held - self._held)
            self._axes, self._held = axes, held
            self._last_input = self._t0 + t
            self._next += 1
        return RawInput(self._axes.copy(), self._held, tuple(pressed), self._last_input)

    def _close(self) -> None:
        pass
