"""Web operator console, served by the actor process: live cameras, status, labels and takeover buttons.

    from robot_rl.console import OperatorConsole
    with OperatorConsole() as console:                  # http://127.0.0.1:<free port>/
        print("operator console:", console.url)
        while True:
            console.update_frame("front", rgb)          # uint8 HxWx3 RGB; JPEG-encoded only when asked for
            console.update_status(episode=ep, step=t, intervening=cmd.active, paused=paused)
            for event in console.poll_events():         # hardware.teleop.OperatorEvent, same as the devices
                ...
            console.end_episode(success=True, interventions=12, steps=80)

The server is the standard library's `ThreadingHTTPServer` on a daemon thread; request handling is short
(a JSON snapshot, or a cached JPEG, encoded by OpenCV outside the lock), so it takes little from the
actor's loop. The page (`console_static/`) is plain HTML/JS/CSS, with no framework and nothing fetched
from elsewhere.

It has NO authentication: whoever can open the page can label episodes and take the robot over. So it
binds to loopback only, unless `allow_remote=True`; to watch from another machine, tunnel instead:
`ssh -L 8080:127.0.0.1:<port> robot-host`, then open http://127.0.0.1:8080/ there.

HTTP API
  GET  /                       the page (and /console.js, /console.css)
  GET  /api/state[?since=N]    {"status", "status_age_s", "history" (episodes after N), "cameras", "frames",
                               "pending_events", "episodes", "ma_window", "camera_hz"}
  GET  /camera/<name>.jpg      the latest frame of that camera (any query string is ignored: cache busting)
  POST /api/event              {"event": "success"|"failure"|"reset"|"pause"|"takeover"|"estop"}, JSON only
Errors are JSON `{"error": "..."}`: 400 bad event or body, 403 cross-origin POST or foreign Host header,
404 unknown path or camera, 405 wrong method, 411 no Content-Length, 413 body over 1 KiB,
415 not application/json, 503 event queue full (the actor is not polling).

CSRF and DNS rebinding: a POST whose Origin header is present and is not this server's own origin is
refused, and so is a POST that is not `application/json` (which a cross-origin page cannot send without
a CORS preflight, which this server never grants); while bound to loopback, requests whose Host header
is not a loopback name are refused too.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
import re
import socket
import threading
import time
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from hardware.teleop import OperatorEvent
from robot_rl.console_http import Handler, Server, Server6

logger = logging.getLogger("robot_rl.console")

STATIC_DIR = Path(__file__).resolve().parent / "console_static"
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
MAX_PENDING_EVENTS = 1000
CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")



def _is_loopback(host: str) -> bool:
    """True if `host` is a loopback address, or a name all of whose addresses are loopback."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def _jsonable(value, where: str):
    """The value as plain JSON types (numpy scalars/arrays converted; NaN/inf become None), else TypeError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be str, got {k!r}")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    raise TypeError(f"{where} must be JSON-like (None, bool, int, float, str, list, dict), got {type(value)}")


class _Frame:
    __slots__ = ("image", "jpeg", "jpeg_seq", "seq", "time")

    def __init__(self, image: np.ndarray, seq: int, t: float):
        self.image, self.seq, self.time = image, seq, t
        self.jpeg: bytes | None = None
        self.jpeg_seq = -1


class OperatorConsole:
    """The operator's web console. Thread-safe: the actor pushes frames and status and drains events from
    its own thread while the server answers the browser on others.

    host/port: where to listen (port 0: a free port; read `.url` after `start()`).
    allow_remote: permit a non-loopback `host`. There is no authentication, so only on a trusted network.
    ma_window: episodes in the success-rate moving average. history_len: episodes kept for the plots.
    jpeg_quality: 1-100. camera_hz: how often the page refreshes each camera (it also waits for each
    image to load, so a slow link never piles up requests).
    """

    @property
    def max_pending_events(self) -> int:
        """Operator events held for the actor before new ones are refused (503)."""
        return MAX_PENDING_EVENTS

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
        ma_window: int = 10,
        history_len: int = 1000,
        jpeg_quality: int = 80,
        camera_hz: float = 8.0,
    ):
        if not isinstance(host, str) or not host:
            raise ValueError(f"OperatorConsole host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"OperatorConsole port must be an int in [0, 65535], got {port!r}")
        self.loopback = _is_loopback(host)
        if not self.loopback and not allow_remote:
            raise ValueError(
                f"OperatorConsole refuses to listen on {host!r}: it has no authentication, so anyone who "
                "can reach it could label episodes and take the robot over. Keep the default host "
                "'127.0.0.1' and tunnel (ssh -L 8080:127.0.0.1:<port> <robot-host>), or pass "
                "allow_remote=True on a trusted network."
            )
        for name, v, lo, hi in (
            ("ma_window", ma_window, 1, 10_000),
            ("history_len", history_len, 1, 1_000_000),
            ("jpeg_quality", jpeg_quality, 1, 100),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"OperatorConsole {name} must be an int in [{lo}, {hi}], got {v!r}")
        if (
            isinstance(camera_hz, bool)
            or not isinstance(camera_hz, (int, float))
            or not 0.5 <= camera_hz <= 60
        ):
            raise ValueError(f"OperatorConsole camera_hz must be a number in [0.5, 60], got {camera_hz!r}")
        self.host, self._port = host, port
        self.allow_remote = bool(allow_remote)
        self.ma_window, self.history_len = ma_window, history_len
        self.jpeg_quality, self.camera_hz = jpeg_quality, float(camera_hz)

        self._lock = threading.Lock()
        self._frames: dict[str, _Frame] = {}
        self._frame_seq = 0
        self._status: dict = {}
        self._status_time: float | None = None
        self._history: collections.deque[dict] = collections.deque(maxlen=history_len)
        self._recent_success: collections.deque[bool] = collections.deque(maxlen=ma_window)
        self._episodes = 0
        self._events: collections.deque[tuple[OperatorEvent, float]] = collections.deque()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._static: dict[str, tuple[bytes, str]] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._closed:
            raise RuntimeError("OperatorConsole was closed; make a new one")
        if self._server is not None:
            raise RuntimeError("OperatorConsole already started")
        for route, (fname, ctype) in STATIC_FILES.items():
            try:
                self._static[route] = ((STATIC_DIR / fname).read_bytes(), ctype)
            except OSError as e:
                raise FileNotFoundError(
                    f"OperatorConsole page file missing: {STATIC_DIR / fname} ({e}); it ships with the package "
                    "as robot_rl/console_static/"
                ) from e
        bind_host = self.host.strip("[]")
        cls = Server6 if ":" in bind_host else Server
        self._server = cls((bind_host, self._port), Handler)
        self._server.console = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="operator-console",
            daemon=True,
        )
        self._thread.start()
        logger.info("operator console at %s", self.url)
        return self

    def close(self) -> None:
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("OperatorConsole is not running: call start() first")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self.host.strip("[]")
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def __repr__(self) -> str:
        where = self.url if self._server is not None else f"{self.host}:{self._port} (not running)"
        return f"OperatorConsole({where})"

    # -- actor side ----------------------------------------------------------------------------------------

    def update_frame(self, camera: str, image: np.ndarray) -> None:
        """Latest image of `camera` (uint8 HxWx3 RGB). Copied; encoded to JPEG only when a browser asks."""
        if not isinstance(camera, str) or not CAMERA_NAME.match(camera):
            raise ValueError(f"camera name must match {CAMERA_NAME.pattern} (used in URLs), got {camera!r}")
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"update_frame({camera!r}): image must be a uint8 HxWx3 RGB array, got {desc}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"update_frame({camera!r}): empty image {image.shape}")
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # the copy, already in OpenCV's channel order
        with self._lock:
            self._frame_seq += 1
            self._frames[camera] = _Frame(bgr, self._frame_seq, time.monotonic())

    def update_status(self, **fields) -> None:
        """Merge fields into the status shown on the page, e.g. actor_id, episode, step, intervening,
        paused, policy_version, last_reward, device, device_connected. Values must be JSON-like."""
        clean = {k: _jsonable(v, f"update_status({k}=...)") for k, v in fields.items()}
        with self._lock:
            self._status.update(clean)
            self._status_time = time.monotonic()

    def end_episode(self, success: bool, interventions: int, steps: int) -> None:
        """Record a finished episode for the plots. `interventions`: steps in which the human was in control
        (so the plotted intervention rate is interventions / steps)."""
        if not isinstance(success, (bool, np.bool_)):
            raise ValueError(f"end_episode: success must be a bool, got {success!r}")  # noqa: TRY004
        for name, v in (("interventions", interventions), ("steps", steps)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"end_episode: {name} must be an int >= 0, got {v!r}")
        if interventions > steps:
            raise ValueError(f"end_episode: interventions ({interventions}) > steps ({steps})")
        with self._lock:
            self._episodes += 1
            self._recent_success.append(bool(success))
            self._history.append(
                {
                    "episode": self._episodes,
                    "success": bool(success),
                    "interventions": int(interventions),
                    "steps": int(steps),
                    "intervention_rate": int(interventions) / int(steps) if steps else 0.0,
                    "success_ma": sum(self._recent_success) / len(self._recent_success),
                }
            )

    def poll_events(self) -> list[OperatorEvent]:
        """Events from the page's buttons since the last poll, oldest first (drains the queue)."""
        return [event for event, _ in self.poll_timed_events()]

    def poll_timed_events(self) -> list[tuple[OperatorEvent, float]]:
        """As `poll_events`, with the `time.monotonic()` at which the server received each one."""
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    # -- read side (also for tests) --------------------------------------------------------------------------

    @property
    def history(self) -> list[dict]:
        with self._lock:
            return [dict(h) for h in self._history]

    def state(self, since: int = 0) -> dict:
        """What GET /api/state returns; `since`: only episodes after that one in `history`."""
        now = time.monotonic()
        with self._lock:
            frames = {
                name: {
                    "width": f.image.shape[1],
                    "height": f.image.shape[0],
                    "seq": f.seq,
                    "age_s": round(now - f.time, 3),
                }
                for name, f in self._frames.items()
            }
            return {
                "status": dict(self._status),
                "status_age_s": None if self._status_time is None else round(now - self._status_time, 3),
                "history": [dict(h) for h in self._history if h["episode"] > since],
                "episodes": self._episodes,
                "ma_window": self.ma_window,
                "history_len": self.history_len,
                "cameras": sorted(self._frames),
                "frames": frames,
                "pending_events": len(self._events),
                "camera_hz": self.camera_hz,
            }

    def jpeg(self, camera: str) -> bytes | None:
        """The latest frame of `camera` as JPEG bytes (cached per frame), or None for an unknown camera."""
        with self._lock:
            frame = self._frames.get(camera)
            if frame is None:
                return None
            if frame.jpeg_seq == frame.seq:
                return frame.jpeg
            image, seq = frame.image, frame.seq
        # outside the lock: the array is never written after update_frame, and OpenCV releases the GIL
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"cv2.imencode failed for camera {camera!r}")
        data = buf.tobytes()
        with self._lock:
            if frame.jpeg_seq < seq:
                frame.jpeg, frame.jpeg_seq = data, seq
        return data

    def _push_event(self, event: OperatorEvent) -> int | None:
        with self._lock:
            if len(self._events) >= MAX_PENDING_EVENTS:
                return None
            self._events.append((event, time.monotonic()))
            return len(self._events)

    def _own_origins(self, host_header: str | None) -> set[str]:
        port = self.port
        names = {self.host.strip("[]").lower()}
        if self.loopback:
            names.update(_LOOPBACK_NAMES)
        origins = {f"http://[{n}]:{port}" if ":" in n else f"http://{n}:{port}" for n in names}
        if self.allow_remote and host_header:
            # the machine's names are not all known here; same-origin with the address the page was loaded from
            origins.add(f"http://{host_header.lower()}")
        return origins

    def _host_allowed(self, host_header: str | None) -> bool:
        """DNS-rebinding guard while on loopback: the Host header must be a loopback name or address."""
        if not self.loopback:
            return True
        if not host_header:
            return True  # HTTP/1.0 clients may omit it; browsers always send it
        host = host_header.strip()
        m = re.match(r"^(\[[^\]]+\]|[^:]+)(?::(\d+))?$", host)
        if not m:
            return False
        name = m.group(1).strip("[]").lower()
        if name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False
