"""Frame sources behind one small interface: `read() -> uint8 HxWx3 RGB` (or None when no frame came).

- `opencv`: `cv2.VideoCapture` on a device index ("0"), a /dev/video path, a file or a stream URL;
- `realsense`: an Intel RealSense colour stream (needs `pyrealsense2`, and apt `libusb-1.0-0`);
- `pattern`: a moving synthetic test pattern with a frame counter, for tests and benchmarks.

Crop (x, y, width, height in source pixels) then resize are applied here, so every consumer gets the
frames the policy was trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

SOURCES = ("opencv", "realsense", "pattern")


@dataclass(frozen=True)
class CameraConfig:
    name: str = "front"
    source: str = "opencv"
    device: str = "0"  # opencv: index, path or URL; realsense: serial number ("" = the first one)
    width: int = 640  # requested from the device (pattern: the frame size)
    height: int = 480
    fps: float = 30.0
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height in source pixels
    resize: tuple[int, int] | None = None  # width, height after the crop

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"CameraConfig.source must be one of {SOURCES}, got {self.source!r}")
        if not (self.width > 0 and self.height > 0 and self.fps > 0):
            raise ValueError(f"CameraConfig width, height and fps must be > 0, got {self.width}, {self.height}, {self.fps}")
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
            x, y, w, h = self.crop
            if min(x, y) < 0 or w <= 0 or h <= 0:
                raise ValueError(f"CameraConfig.crop must be x, y >= 0 and width, height > 0, got {self.crop}")
        if self.resize is not None:
            object.__setattr__(self, "resize", tuple(int(v) for v in self.resize))
            if len(self.resize) != 2 or min(self.resize) <= 0:
                raise ValueError(f"CameraConfig.resize must be (width, height) > 0, got {self.resize}")


class CameraSource:
    def __init__(self, config: CameraConfig):
        self.config = config
        self.frames = 0

    def read(self) -> np.ndarray | None:
        frame = self._read()
        if frame is None:
            return None
        self.frames += 1
        return self.process(frame)

    def process(self, rgb: np.ndarray) -> np.ndarray:
        cfg = self.config
        if cfg.crop is not None:
            x, y, w, h = cfg.crop
            if x + w > rgb.shape[1] or y + h > rgb.shape[0]:
                raise ValueError(f"camera {cfg.name}: crop {cfg.crop} exceeds the {rgb.shape[1]}x{rgb.shape[0]} frame")
            rgb = rgb[y:y + h, x:x + w]
        if cfg.resize is not None and (rgb.shape[1], rgb.shape[0]) != cfg.resize:
            rgb = cv2.resize(rgb, cfg.resize, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)

    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class OpenCVCamera(CameraSource):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        device = int(config.device) if config.device.isdigit() else config.device
        self.capture = cv2.VideoCapture(device)
        if not self.capture.isOpened():
            raise OSError(f"camera {config.name}: cannot open {config.device!r} with OpenCV (is it plugged in, "
                          "and readable by this user? `v4l2-ctl --list-devices` lists them)")
        self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        self.capture.set(cv2.CAP_PROP_FPS, config.fps)

    def _read(self):
        ok, bgr = self.capture.read()
        return np.ascontiguousarray(bgr[:, :, ::-1]) if ok else None

    def close(self) -> None:
        self.capture.release()


class RealSenseCamera(CameraSource):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        try:
            import pyrealsense2 as rs
        except ImportError as err:
            raise OSError("camera source 'realsense' needs `pip install pyrealsense2` (and apt libusb-1.0-0)") from err
        self._rs = rs
        self.pipeline = rs.pipeline()
        rs_config = rs.config()
        if config.device:
            rs_config.enable_device(config.device)
        rs_config.enable_stream(rs.stream.color, config.width, config.height, rs.format.rgb8, int(config.fps))
        try:
            self.pipeline.start(rs_config)
        except RuntimeError as err:
            raise OSError(f"camera {config.name}: RealSense {config.device or '(first)'} did not start: {err}") from err

    def _read(self):
        frames = self.pipeline.poll_for_frames()
        if not frames:
            return None
        color = frames.get_color_frame()
        return np.asanyarray(color.get_data()).copy() if color else None

    def close(self) -> None:
        self.pipeline.stop()


class PatternCamera(CameraSource):
    """Gradient bars that move one pixel a frame, the frame number drawn in: changes every frame."""

    def __init__(self, config: CameraConfig):
        super().__init__(config)
        x = np.arange(config.width)
        y = np.arange(config.height)[:, None]
        self._base = np.dstack([np.broadcast_to((x * 255 // max(config.width - 1, 1)), (config.height, config.width)),
                                np.broadcast_to(y * 255 // max(config.height - 1, 1), (config.height, config.width)),
                                np.full((config.height, config.width), 96)]).astype(np.uint8)
        self.started = time.monotonic()

    def _read(self):
        frame = np.roll(self._base, self.frames, axis=1)
        cv2.putText(frame, str(self.frames), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        return frame


def open_camera(config: CameraConfig) -> CameraSource:
    return {"opencv": OpenCVCamera, "realsense": RealSenseCamera, "pattern": PatternCamera}[config.source](config)
