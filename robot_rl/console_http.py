"""The operator console's HTTP side (robot_rl/console.py has the console and its API): a threading
server bound to the console, and the request handler with its CSRF, Host and body-size checks."""

from __future__ import annotations

import json
import logging
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hardware.teleop import OperatorEvent

MAX_BODY_BYTES = 1024
_MAX_DRAIN_BYTES = 1 << 20
_CAMERA_PATH = re.compile(r"^/camera/([^/]+)\.jpg$")
logger = logging.getLogger("robot_rl.console")

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    console: Any  # the robot_rl.console.OperatorConsole it serves


class Server6(Server):
    address_family = socket.AF_INET6



class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "robot_rl-console"
    timeout = 10  # seconds per socket read: a stalled client does not hold a thread for ever
    sys_version = ""

    def log_message(self, fmt, *args):
        logger.debug("%s %s", self.address_string(), fmt % args)

    # -- responses ---------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, extra: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", extra)

    def _error(self, status: int, message: str, extra: dict | None = None) -> None:
        self._json(status, {"error": message}, extra)

    def _check_host(self) -> bool:
        if self.server.console._host_allowed(self.headers.get("Host")):
            return True
        self._error(403, f"Host header {self.headers.get('Host')!r} is not a loopback name (DNS rebinding?)")
        return False

    # -- methods -----------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._check_host():
            return
        console = self.server.console
        parts = urlsplit(self.path)
        path = parts.path
        if path in console._static:
            body, ctype = console._static[path]
            self._send(200, body, ctype)
            return
        if path == "/favicon.ico":  # browsers ask for it; no icon, and no 404 in the browser's console
            self.send_response(204)
            self.send_header("Cache-Control", "max-age=86400")
            self.end_headers()
            return
        if path == "/api/state":
            query = parse_qs(parts.query)
            try:
                since = int(query.get("since", ["0"])[0])
            except ValueError:
                self._error(400, f"since must be an integer episode number, got {query['since'][0]!r}")
                return
            self._json(200, console.state(since))
            return
        m = _CAMERA_PATH.match(path)
        if m:
            name = m.group(1)
            data = console.jpeg(name)
            if data is None:
                cams = console.state()["cameras"]
                self._error(404, f"unknown camera {name!r}; cameras with a frame: {cams}")
                return
            self._send(200, data, "image/jpeg")
            return
        if path == "/api/event":
            self._error(405, 'POST /api/event with JSON {"event": ...}', {"Allow": "POST"})
            return
        self._error(404, f"no such page: {path}")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _take_body(self) -> tuple[bytes, tuple[int, str] | None]:
        """Read the request body before answering anything (an unread body can turn the answer into a
        connection reset). Returns (body, None), or (b"", (status, message)) for a body it will not take:
        one over MAX_BODY_BYTES is drained (up to 1 MiB) and refused, the connection then closed."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return b"", (411, "send a Content-Length (chunked bodies are not accepted)")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b"", None
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            return b"", (400, f"bad Content-Length {length_header!r}")
        if 0 <= length <= MAX_BODY_BYTES:
            return self.rfile.read(length), None
        self.close_connection = True
        left = min(max(length, 0), _MAX_DRAIN_BYTES)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
        return b"", (413, f"body of {length} bytes; at most {MAX_BODY_BYTES}")

    def do_POST(self) -> None:
        raw, refused = self._take_body()
        if not self._check_host():
            return
        console = self.server.console
        path = urlsplit(self.path).path
        if path != "/api/event":
            status = 405 if path in console._static or path == "/api/state" else 404
            self._error(status, f"POST is only for /api/event, not {path}")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower().rstrip("/") not in console._own_origins(
            self.headers.get("Host")
        ):
            self._error(403, f"cross-origin request refused (Origin {origin!r} is not this console)")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(415, f"Content-Type must be application/json, got {ctype or 'none'!r}")
            return
        if refused is not None:
            self._error(*refused)
            return
        if self.headers.get("Content-Length") is None:
            self._error(411, "Content-Length required")
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self._error(400, f"body is not valid JSON: {e}")
            return
        choices = [e.value for e in OperatorEvent]
        if not isinstance(body, dict) or set(body) != {"event"}:
            self._error(400, f'body must be {{"event": one of {choices}}}, got {raw[:200]!r}')
            return
        try:
            event = OperatorEvent(body["event"])
        except (ValueError, TypeError):
            self._error(400, f"unknown event {body['event']!r}; events are {choices}")
            return
        pending = console._push_event(event)
        if pending is None:
            self._error(503, f"event queue full ({console.max_pending_events}): the actor is not polling events")
            return
        logger.info("operator console event %s from %s", event.name, self.client_address[0])
        self._json(200, {"ok": True, "event": event.value, "pending_events": pending})

    def _method_not_allowed(self) -> None:
        self._take_body()
        self._error(405, f"{self.command} not supported (GET, or POST /api/event)", {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

