"""3Dconnexion SpaceMouse over raw HID (hidapi's `hid` module); the reports are parsed here.

HID reports (the first byte is the report id):
- id 1, 7 bytes: translation x, y, z as int16 little-endian (older devices: SpaceNavigator, SpaceMouse Pro);
- id 1, 13 bytes: translation then rotation, 6 x int16 (SpaceMouse Wireless / Compact / Enterprise, the
  universal receiver);
- id 2, 7 bytes: rotation rx, ry, rz (older devices);
- id 3: button bitmask, little-endian over the remaining bytes (bit 0 = left / first button).
Other report ids (battery level on wireless devices, ...) are ignored.

The device frame is x right, y towards the operator, z down (right-handed; rotations about the same
axes). `raw_to_operator` turns it into the operator frame of base.py (x forward, y left, z up): a proper
rotation, applied to translation and rotation alike. Rotation signs are as the HID axes imply and not
checked on every model; flip them with `TeleopConfig.rotation_signs` if a device disagrees.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

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

VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D  # older 3Dconnexion devices were sold under Logitech's vendor id

# (vendor id, product id) -> model name
KNOWN_SPACEMICE: dict[tuple[int, int], str] = {
    (0x046D, 0xC603): "SpaceMouse Plus XT",
    (0x046D, 0xC605): "CADMan",
    (0x046D, 0xC606): "SpaceMouse Classic",
    (0x046D, 0xC621): "SpaceBall 5000",
    (0x046D, 0xC623): "SpaceTraveler",
    (0x046D, 0xC625): "SpacePilot",
    (0x046D, 0xC626): "SpaceNavigator",
    (0x046D, 0xC627): "SpaceExplorer",
    (0x046D, 0xC628): "SpaceNavigator for Notebooks",
    (0x046D, 0xC629): "SpacePilot Pro",
    (0x046D, 0xC62B): "SpaceMouse Pro",
    (0x256F, 0xC62E): "SpaceMouse Wireless (cable)",
    (0x256F, 0xC62F): "SpaceMouse Wireless (receiver)",
    (0x256F, 0xC631): "SpaceMouse Pro Wireless (cable)",
    (0x256F, 0xC632): "SpaceMouse Pro Wireless (receiver)",
    (0x256F, 0xC633): "SpaceMouse Enterprise",
    (0x256F, 0xC635): "SpaceMouse Compact",
    (0x256F, 0xC636): "SpaceMouse Module",
    (0x256F, 0xC641): "SpaceMouse (USB)",
    (0x256F, 0xC652): "3Dconnexion Universal Receiver",
}

# Read permission on /dev/hidraw* for everyone (put in /etc/udev/rules.d/99-spacemouse.rules).
UDEV_RULES = (
    'SUBSYSTEM=="hidraw", ATTRS{idVendor}=="256f", MODE="0666"\n'
    'SUBSYSTEM=="hidraw", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c6[0-4]?", MODE="0666"\n'
)

FULL_SCALE = 350.0  # counts at full deflection (devices report up to about +-350, some a little more)

# Default buttons: bit index -> function (bit 0 = left button, bit 1 = right button on two-button models).
DEFAULT_BUTTONS = {0: "gripper", 1: "takeover"}

# Device frame (x right, y towards the operator, z down) -> operator frame (x forward, y left, z up).
_RAW_TO_OPERATOR = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class SpaceMouseState:
    """Raw device state in counts, device frame."""

    translation: tuple[int, int, int] = (0, 0, 0)
    rotation: tuple[int, int, int] = (0, 0, 0)
    buttons: int = 0  # bitmask


def _int16s(data: bytes, count: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[2 * i : 2 * i + 2], "little", signed=True) for i in range(count))


def parse_report(report: bytes, state: SpaceMouseState) -> SpaceMouseState:
    """The state after one HID report (pure: `state` is not modified). Unknown or short reports leave
    the state unchanged."""
    report = bytes(report)
    if not report:
        return state
    rid, body = report[0], report[1:]
    if rid == 1:
        if len(body) >= 12:  # translation + rotation in one report
            values = _int16s(body, 6)
            return replace(state, translation=values[:3], rotation=values[3:])
        if len(body) >= 6:
            return replace(state, translation=_int16s(body, 3))
    elif rid == 2 and len(body) >= 6:
        return replace(state, rotation=_int16s(body, 3))
    elif rid == 3 and len(body) >= 1:
        return replace(state, buttons=int.from_bytes(body[:4], "little"))
    return state


def raw_to_operator(state: SpaceMouseState, full_scale: float = FULL_SCALE) -> np.ndarray:
    """Six axes in the operator frame, normalised by `full_scale` and clipped to [-1, 1]."""
    t = _RAW_TO_OPERATOR @ np.asarray(state.translation, dtype=np.float64)
    r = _RAW_TO_OPERATOR @ np.asarray(state.rotation, dtype=np.float64)
    return np.clip(np.concatenate([t, r]) / full_scale, -1.0, 1.0)


@runtime_checkable
class HIDTransport(Protocol):
    """The byte level: everything above it (parsing, state, events) is SpaceMouseDevice's."""

    description: str

    def open(self) -> None:
        """Open the device; raise DeviceNotFound or OSError."""

    def read(self, timeout_ms: int) -> bytes:
        """One input report, b"" when none arrived within timeout_ms (0: don't wait); OSError when the
        device is gone."""

    def close(self) -> None: ...


def _import_hid():
    """hidapi's module. On Linux its `hidraw` module (the same package) is preferred: it reads
    /dev/hidraw* (the udev rule below) and leaves the kernel driver attached, where the wheel's `hid`
    module goes through libusb, needs access to /dev/bus/usb and detaches the kernel driver."""
    try:
        import hid
    except ImportError as exc:
        raise DeviceNotFound(
            f"SpaceMouse support needs the hidapi package (import hid failed: {exc}); {PIP_HINT}"
        ) from None
    if not hasattr(hid, "device"):
        raise DeviceNotFound(
            "the installed `hid` module is not hidapi's (another package named `hid` shadows it): "
            f"pip uninstall hid, then {PIP_HINT}"
        )
    if sys.platform.startswith("linux"):
        try:
            import hidraw
        except ImportError:
            return hid
        if hasattr(hidraw, "device"):
            return hidraw
    return hid


def _not_found_message(detail: str) -> str:
    ids = ", ".join(f"{v:04x}:{p:04x}" for v, p in KNOWN_SPACEMICE)
    return (
        f"No usable 3Dconnexion SpaceMouse: {detail}.\n"
        f"Check: the USB cable or wireless receiver is plugged in (`lsusb | grep -i -e 256f -e 046d`; "
        f"known vendor:product ids {ids});\n"
        f"the user can read /dev/hidraw* - add these udev rules to /etc/udev/rules.d/99-spacemouse.rules:\n"
        f"{UDEV_RULES}"
        f"then run `sudo udevadm control --reload-rules && sudo udevadm trigger` and re-plug the device."
    )


def _is_multi_axis(info: dict) -> bool:
    return info.get("usage_page") == 1 and info.get("usage") == 8  # HID "multi-axis controller"


def list_spacemice() -> list[dict]:
    """hidapi's enumeration entries (dicts with path, vendor_id, product_id, product_string, ...) of the
    known SpaceMice plugged in; multi-axis-controller interfaces first where a device has several."""
    hid = _import_hid()
    entries = [e for e in hid.enumerate() if (e.get("vendor_id"), e.get("product_id")) in KNOWN_SPACEMICE]
    return sorted(entries, key=lambda e: not _is_multi_axis(e))


class HidapiTransport:
    """HIDTransport over hidapi. With no path, opens the first known SpaceMouse (or the given ids)."""

    def __init__(
        self, vendor_id: int | None = None, product_id: int | None = None, path: bytes | None = None
    ):
        self.vendor_id, self.product_id, self.path = vendor_id, product_id, path
        self.description = "SpaceMouse"
        self._dev = None

    def _find(self) -> dict:
        hid = _import_hid()
        if self.vendor_id is not None:
            entries = [
                e
                for e in hid.enumerate(self.vendor_id, self.product_id or 0)
                if self.product_id is None or e.get("product_id") == self.product_id
            ]
            entries.sort(key=lambda e: not _is_multi_axis(e))
            want = f"{self.vendor_id:04x}:{(self.product_id or 0):04x}"
        else:
            entries = list_spacemice()
            want = "any known model"
        if not entries:
            raise DeviceNotFound(_not_found_message(f"no HID device matches {want}"))
        return entries[0]

    def open(self) -> None:
        hid = _import_hid()
        if self.path is not None:
            path, info = self.path, {}
        else:
            info = self._find()
            path = info["path"]
        key = (info.get("vendor_id"), info.get("product_id"))
        model = KNOWN_SPACEMICE.get(key, info.get("product_string") or "SpaceMouse")
        self.description = f"{model} ({path.decode(errors='replace') if isinstance(path, bytes) else path})"
        dev = hid.device()
        try:
            dev.open_path(path)
        except OSError as exc:
            raise DeviceNotFound(
                _not_found_message(
                    f"found {self.description} but could not open it ({exc}); usually a "
                    f"permission problem on /dev/hidraw*"
                )
            ) from None
        self._dev = dev

    def read(self, timeout_ms: int) -> bytes:
        if self._dev is None:
            raise OSError("SpaceMouse transport is not open")
        return bytes(self._dev.read(64, timeout_ms))

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            dev.close()


class SpaceMouseDevice(TeleopDevice):
    """A 3Dconnexion SpaceMouse. `threaded=True` reads reports on a background thread (accurate input
    timestamps, no report lost while the caller is busy); `threaded=False` drains the pending reports
    inside `poll()`. Either way every report is applied in order, so the latest state wins and a button
    press between two polls still produces its event.

    buttons: {bit index: function}, functions from base.BUTTON_FUNCTIONS (default left = gripper,
    right = takeover)."""

    name = "SpaceMouse"
    READ_TIMEOUT_MS = 20  # reader thread wake-up period (bounds close() latency)
    MAX_DRAIN = 4096

    def __init__(
        self,
        config: TeleopConfig | None = None,
        *,
        transport: HIDTransport | None = None,
        vendor_id: int | None = None,
        product_id: int | None = None,
        path: bytes | None = None,
        buttons: dict[int, str] | None = None,
        full_scale: float = FULL_SCALE,
        threaded: bool = True,
    ):
        super().__init__(config)
        if not (np.isfinite(full_scale) and full_scale > 0):
            raise ValueError(f"SpaceMouseDevice full_scale must be > 0 counts, got {full_scale!r}")
        self.buttons = validate_button_map(DEFAULT_BUTTONS if buttons is None else buttons, "SpaceMouse")
        if any(not isinstance(b, int) or not 0 <= b < 32 for b in self.buttons):
            raise ValueError(f"SpaceMouse button keys are bit indices 0..31, got {sorted(self.buttons)}")
        self.full_scale = float(full_scale)
        self.threaded = threaded
        self.transport = transport if transport is not None else HidapiTransport(vendor_id, product_id, path)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connect()

    # -- device I/O -------------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.transport.open()
        except OSError as exc:
            raise DeviceNotFound(
                _not_found_message(f"could not open {self.transport.description} ({exc})")
            ) from None
        self.name = getattr(self.transport, "description", None) or "SpaceMouse"
        with self._lock:
            self.state = SpaceMouseState()
            self._pressed: list[str] = []
            self._last_input: float | None = None
            self._error: BaseException | None = None
        if self.threaded:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._reader, name="spacemouse-reader", daemon=True)
            self._thread.start()

    def _close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self.transport.close()

    def _reader(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                report = self.transport.read(self.READ_TIMEOUT_MS)
            except Exception as exc:  # noqa: BLE001 - any failure here means the device is unusable
                with self._lock:
                    self._error = exc
                return
            if report:
                now = time.monotonic()
                with self._lock:
                    self._ingest(report, now)

    def _ingest(self, report: bytes, now: float) -> None:
        new = parse_report(report, self.state)
        rising = new.buttons & ~self.state.buttons
        if rising & 0b11 and new.buttons & 0b11 == 0b11:  # both main buttons at once: the e-stop, on every model
            self._pressed.append("estop")
        bit = 0
        while rising >> bit:
            if (rising >> bit) & 1 and bit in self.buttons:
                self._pressed.append(self.buttons[bit])
            bit += 1
        self.state = new
        self._last_input = now

    def _read(self) -> RawInput:
        if not self.threaded:
            for _ in range(self.MAX_DRAIN):
                report = self.transport.read(0)  # OSError propagates: poll() marks the device lost
                if not report:
                    break
                self._ingest(report, time.monotonic())
        with self._lock:
            if self._error is not None:
                raise DeviceDisconnected(f"{self.name}: {self._error}")
            state, pressed, stamp = self.state, tuple(self._pressed), self._last_input
            self._pressed.clear()
        held = frozenset(fn for bit, fn in self.buttons.items() if (state.buttons >> bit) & 1)
        return RawInput(raw_to_operator(state, self.full_scale), held, pressed, stamp)
