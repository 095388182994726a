"""Web operator console: the HTTP API against the real server on an ephemeral port, and the page in a real
headless Chromium driven by selenium.

The browser test needs `chromium` + `chromium-driver` (Debian) and `selenium` (pip). Where they are missing
it FAILS with what to install, so CI cannot pass without running it; set ROBOT_RL_SKIP_BROWSER=1 to skip
it deliberately on a machine without a browser.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from hardware.teleop import OperatorEvent
from robot_rl.console import OperatorConsole
from robot_rl.console_http import MAX_BODY_BYTES

E = OperatorEvent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def console():
    with OperatorConsole() as c:
        yield c


def _request(url, method="GET", body=None, headers=None, timeout=5):
    """(status, headers, body bytes), also for error statuses."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if data is not None and "Content-Type" not in hdrs:
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def _post_event(console, event, headers=None):
    return _request(console.url + "api/event", "POST", {"event": event}, headers)


def _error(body: bytes) -> str:
    return json.loads(body)["error"]


def _image(h, w):
    """RGB test image: top half red, bottom half blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, :, 0] = 255
    img[h // 2 :, :, 2] = 255
    return img


# -- HTTP API ----------------------------------------------------------------------------------------------


def test_state_json(console):
    assert console.url.startswith("http://127.0.0.1:") and console.port > 0
    console.update_status(
        actor_id=3,
        episode=5,
        step=17,
        intervening=True,
        paused=False,
        policy_version=np.int64(9),
        last_reward=np.float32(0.5),
        device="spacemouse",
        device_connected=True,
    )
    console.update_status(step=18, last_reward=float("nan"))  # merged; NaN is not JSON: shown as null
    console.update_frame("front", _image(16, 24))
    for success, interventions, steps in [(False, 10, 50), (True, 0, 40), (True, 5, 20)]:
        console.end_episode(success=success, interventions=interventions, steps=steps)

    status, headers, body = _request(console.url + "api/state")
    assert status == 200 and headers["Content-Type"] == "application/json"
    state = json.loads(body)
    assert state["status"] == {
        "actor_id": 3,
        "episode": 5,
        "step": 18,
        "intervening": True,
        "paused": False,
        "policy_version": 9,
        "last_reward": None,
        "device": "spacemouse",
        "device_connected": True,
    }
    assert 0 <= state["status_age_s"] < 5
    assert state["cameras"] == ["front"]
    assert state["frames"]["front"]["width"] == 24 and state["frames"]["front"]["height"] == 16
    assert state["episodes"] == 3 and state["pending_events"] == 0
    hist = state["history"]
    assert [h["episode"] for h in hist] == [1, 2, 3]
    assert [h["success"] for h in hist] == [False, True, True]
    assert [h["intervention_rate"] for h in hist] == pytest.approx([0.2, 0.0, 0.25])
    assert [h["success_ma"] for h in hist] == pytest.approx([0.0, 0.5, 2 / 3])

    _post_event(console, "reset")
    state = json.loads(_request(console.url + "api/state?since=2")[2])
    assert state["pending_events"] == 1
    assert [h["episode"] for h in state["history"]] == [3]  # the page only fetches what it lacks


def test_success_moving_average_window_and_history_cap():
    with OperatorConsole(ma_window=2, history_len=3) as c:
        for s in [True, False, False, True, True]:
            c.end_episode(s, interventions=0, steps=10)
        hist = c.history
    assert [h["episode"] for h in hist] == [3, 4, 5]
    assert [h["success_ma"] for h in hist] == pytest.approx([0.0, 0.5, 1.0])


def test_camera_jpeg(console):
    console.update_frame("front", _image(48, 64))
    status, headers, body = _request(console.url + "camera/front.jpg?t=123")  # cache-busting query ignored
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "no-store"
    bgr = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert bgr.shape == (48, 64, 3)
    # RGB in, correct colours out: red on top, blue below (decoded as BGR)
    assert bgr[:20, :, 2].mean() > 200 and bgr[:20, :, 0].mean() < 50
    assert bgr[-20:, :, 0].mean() > 200 and bgr[-20:, :, 2].mean() < 50
    assert _request(console.url + "camera/front.jpg")[2] == body  # encoded once per frame, then cached

    console.update_frame("front", _image(30, 40))  # only the latest frame is kept
    bgr = cv2.imdecode(
        np.frombuffer(_request(console.url + "camera/front.jpg")[2], np.uint8), cv2.IMREAD_COLOR
    )
    assert bgr.shape == (30, 40, 3)


def test_frames_are_copied_and_encoded_while_the_actor_writes(console):
    img = _image(32, 32)
    console.update_frame("wrist", img)
    img[:] = 0  # the actor reuses its buffer: the console kept its own copy
    bgr = cv2.imdecode(
        np.frombuffer(_request(console.url + "camera/wrist.jpg")[2], np.uint8), cv2.IMREAD_COLOR
    )
    assert bgr[:10, :, 2].mean() > 200

    stop = threading.Event()

    def push():
        i = 0
        while not stop.is_set():
            console.update_frame("wrist", _image(32 + i % 8, 32))
            console.update_status(step=i)
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=push)
    t.start()
    try:
        for _ in range(20):
            status, _, body = _request(console.url + "camera/wrist.jpg")
            assert status == 200
            assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape[1] == 32
            assert _request(console.url + "api/state")[0] == 200
    finally:
        stop.set()
        t.join()


def test_unknown_camera_is_404(console):
    console.update_frame("front", _image(8, 8))
    status, headers, body = _request(console.url + "camera/side.jpg")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert "unknown camera 'side'" in _error(body) and "front" in _error(body)
    assert _request(console.url + "nothing/here")[0] == 404


def test_events_arrive_in_order_with_timestamps(console):
    assert console.poll_events() == []
    order = ["success", "pause", "takeover", "failure", "reset", "pause", "takeover"]
    t0 = time.monotonic()
    for name in order:
        status, _, body = _post_event(console, name)
        assert status == 200, body
        assert json.loads(body)["event"] == name
    t1 = time.monotonic()
    timed = console.poll_timed_events()
    assert [e for e, _ in timed] == [OperatorEvent(n) for n in order]
    times = [t for _, t in timed]
    assert times == sorted(times) and t0 <= times[0] and times[-1] <= t1
    assert console.poll_events() == []  # drained

    _post_event(console, "success")
    assert console.poll_events() == [E.SUCCESS]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"event": "sucess"}, "unknown event 'sucess'"),
        ({"event": "SUCCESS"}, "unknown event"),  # the wire names are the enum values, lower case
        ({"event": 1}, "unknown event"),
        ({"event": "success", "extra": 1}, "body must be"),
        (["success"], "body must be"),
        (b"success", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_event_is_400(console, body, needle):
    status, _, resp = _request(console.url + "api/event", "POST", body)
    assert status == 400 and needle in _error(resp)
    assert "success" in _error(resp) or "JSON" in _error(resp)
    assert console.poll_events() == []


def test_post_guards(console):
    url = console.url + "api/event"
    ok = json.dumps({"event": "success"}).encode()
    # only POST mutates
    status, headers, body = _request(url)
    assert status == 405 and headers["Allow"] == "POST"
    assert _request(url, "PUT", ok)[0] == 405
    assert _request(console.url + "api/state", "POST", ok)[0] == 405
    # JSON only (a cross-origin form cannot send it without a preflight, which is never granted)
    status, _, body = _request(url, "POST", ok, {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in _error(body)
    status, _, body = _request(
        url, "POST", b"event=success", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415
    assert _request(url, "OPTIONS")[0] == 405
    # oversized
    big = json.dumps({"event": "success", "pad": "x" * (2 * MAX_BODY_BYTES)}).encode()
    status, _, body = _request(url, "POST", big)
    assert status == 413 and str(MAX_BODY_BYTES) in _error(body)
    status, _, body = _request(url, "POST", b"x" * 300_000)  # read and refused, not a connection reset
    assert status == 413
    # no Content-Length (a raw request; urllib always sends one)
    with socket.create_connection(("127.0.0.1", console.port), timeout=5) as sock:
        sock.sendall(b"POST /api/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n")
        assert sock.makefile("rb").readline().split()[1] == b"411"
    assert console.poll_events() == []


def test_cross_origin_post_is_403(console):
    origin = console.url.rstrip("/")
    for bad in ("http://evil.example", "http://127.0.0.1:1", "null", f"https://127.0.0.1:{console.port}"):
        status, _, body = _post_event(console, "takeover", {"Origin": bad})
        assert status == 403 and "cross-origin" in _error(body), bad
    assert console.poll_events() == []
    # the page's own origin, under any loopback name the browser used to open it
    for good in (origin, f"http://localhost:{console.port}", f"http://[::1]:{console.port}"):
        assert _post_event(console, "takeover", {"Origin": good})[0] == 200, good
    assert _post_event(console, "takeover")[0] == 200  # no Origin (curl, scripts): allowed
    assert console.poll_events() == [E.TAKEOVER] * 4


def test_foreign_host_header_is_403_dns_rebinding(console):
    status, _, body = _request(console.url + "api/state", headers={"Host": f"evil.example:{console.port}"})
    assert status == 403 and "Host" in _error(body)
    status, _, _ = _post_event(console, "success", {"Host": "evil.example", "Origin": "http://evil.example"})
    assert status == 403
    assert console.poll_events() == []
    assert _request(console.url + "api/state", headers={"Host": f"localhost:{console.port}"})[0] == 200


def test_event_queue_is_bounded(console, monkeypatch):
    monkeypatch.setattr("robot_rl.console.MAX_PENDING_EVENTS", 2)
    assert _post_event(console, "success")[0] == 200
    assert _post_event(console, "failure")[0] == 200
    status, _, body = _post_event(console, "reset")
    assert status == 503 and "not polling" in _error(body)
    assert console.poll_events() == [E.SUCCESS, E.FAILURE]


def test_page_and_static_files(console):
    status, headers, body = _request(console.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    page = body.decode()
    for element_id in (
        "btn-estop",
        "btn-success",
        "btn-failure",
        "btn-reset",
        "btn-pause",
        "btn-takeover",
        "status-episode",
        "status-paused",
        "status-intervening",
        "plot-success",
        "plot-intervention",
        "shortcuts",
    ):
        assert f'id="{element_id}"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    for path, ctype in (("console.js", "text/javascript"), ("console.css", "text/css")):
        status, headers, body = _request(console.url + path)
        assert status == 200 and headers["Content-Type"].startswith(ctype) and body
        assert b"https://" not in body
    assert _request(console.url + "favicon.ico")[0] == 204
    assert _request(console.url + "../robot_rl/console.py")[0] == 404


def test_non_loopback_host_is_refused():
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(ValueError, match="no authentication.*allow_remote=True"):
            OperatorConsole(host=host)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        OperatorConsole(host=host)  # constructing does not bind
    with OperatorConsole(host="0.0.0.0", allow_remote=True) as c:  # the explicit opt-in
        assert _request(f"http://127.0.0.1:{c.port}/api/state")[0] == 200


def test_lifecycle_and_validation():
    c = OperatorConsole()
    with pytest.raises(RuntimeError, match="start"):
        _ = c.url
    c.start()
    url = c.url
    with pytest.raises(RuntimeError, match="already started"):
        c.start()
    c.close()
    c.close()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "api/state", timeout=2)
    with pytest.raises(RuntimeError, match="closed"):
        c.start()

    with pytest.raises(ValueError, match="port"):
        OperatorConsole(port=70000)
    with pytest.raises(ValueError, match="ma_window"):
        OperatorConsole(ma_window=0)
    c = OperatorConsole()
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        c.update_frame("front", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        c.update_frame("front", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="camera name"):
        c.update_frame("../x", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(TypeError, match="policy"):
        c.update_status(policy=object())
    with pytest.raises(ValueError, match="interventions"):
        c.end_episode(True, interventions=11, steps=10)
    with pytest.raises(ValueError, match="success"):
        c.end_episode(1, interventions=0, steps=10)


# -- the page in a real browser ----------------------------------------------------------------------------


def _browser():
    """A headless Chromium through chromedriver; fails (never skips silently) when it cannot start."""
    if os.environ.get("ROBOT_RL_SKIP_BROWSER") == "1":
        pytest.skip("ROBOT_RL_SKIP_BROWSER=1")
    install = (
        "apt-get install -y chromium chromium-driver (scripts/setup.sh) and pip install selenium; "
        "or set ROBOT_RL_SKIP_BROWSER=1 to skip this test on purpose"
    )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.fail(f"selenium is not installed ({e}): {install}")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} not found: {install}")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1200,900",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    except Exception as e:  # noqa: BLE001 - report whatever went wrong, verbatim
        pytest.fail(f"headless Chromium did not start: {type(e).__name__}: {e}")


def _wait(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _events_until(console, event, timeout=10.0):
    got = []

    def seen():
        got.extend(console.poll_events())
        return event in got

    _wait(seen, f"{event} from the page")
    return got


def test_page_in_headless_chromium(console):
    from selenium.webdriver.common.by import By

    console.update_frame("front", _image(96, 128))
    console.update_frame("wrist", _image(64, 64))
    console.update_status(
        actor_id=0,
        episode=42,
        step=7,
        intervening=False,
        paused=False,
        device="spacemouse",
        device_connected=True,
    )
    for s in (False, True, True, False, True):
        console.end_episode(s, interventions=3, steps=30)

    driver = _browser()
    try:
        driver.get(console.url)
        js = "const i = document.getElementById(arguments[0]); return i && i.complete ? i.naturalWidth : 0;"
        assert _wait(lambda: driver.execute_script(js, "img-front"), "the front camera image") == 128
        assert _wait(lambda: driver.execute_script(js, "img-wrist"), "the wrist camera image") == 64
        _wait(lambda: driver.find_element(By.ID, "status-episode").text == "42", "episode 42 on the page")
        assert driver.find_element(By.ID, "status-device").text == "spacemouse"
        # images keep refreshing: a new frame shows up
        console.update_frame("front", _image(48, 200))
        _wait(lambda: driver.execute_script(js, "img-front") == 200, "the new front frame")

        driver.find_element(By.ID, "btn-success").click()
        assert _events_until(console, E.SUCCESS) == [E.SUCCESS]
        _wait(lambda: "success sent" in driver.find_element(By.ID, "confirm").text, "the confirmation")

        driver.find_element(By.ID, "btn-pause").click()
        assert _events_until(console, E.PAUSE) == [E.PAUSE]
        assert driver.find_element(By.ID, "status-paused").text == "no"  # the actor decides, then reports
        console.update_status(paused=True, intervening=True)
        _wait(lambda: driver.find_element(By.ID, "status-paused").text == "yes", "paused shown")
        row_class = "return document.getElementById(arguments[0]).className"
        assert "warn" in driver.execute_script(row_class, "row-paused")
        assert "alert" in driver.execute_script(row_class, "row-intervening")  # intervening highlighted
        assert driver.find_element(By.ID, "btn-pause").get_attribute("aria-pressed") == "true"

        # the documented keyboard shortcuts
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("n")
        assert _events_until(console, E.FAILURE) == [E.FAILURE]
        body.send_keys("t")
        assert _events_until(console, E.TAKEOVER) == [E.TAKEOVER]
        driver.find_element(By.ID, "btn-reset").click()
        assert _events_until(console, E.RESET) == [E.RESET]
        # the E-STOP: a button and a key (the actor latches the robot's e-stop on it)
        driver.find_element(By.ID, "btn-estop").click()
        assert _events_until(console, E.ESTOP) == [E.ESTOP]
        body.send_keys("e")
        assert _events_until(console, E.ESTOP) == [E.ESTOP]

        # the plots are drawn: coloured pixels on both canvases
        drawn = """const c = document.getElementById(arguments[0]);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 120 && d[i + 2] < 100) n++;
            return n;"""
        assert driver.execute_script(drawn, "plot-success") > 20
        assert driver.execute_script(drawn, "plot-intervention") > 20
        assert driver.find_element(By.ID, "episodes-count").text == "5"

        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == [], severe  # no script errors, no CSP violations, no failed loads
    finally:
        driver.quit()
