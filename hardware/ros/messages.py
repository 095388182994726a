"""Conversions between standard ROS 2 messages and numpy, with validation that says what is wrong.

Images without cv_bridge: rgb8/bgr8/rgba8/bgra8/mono8 raw images and JPEG/PNG compressed images to
uint8 HxWx3 RGB. Poses as (position (3,), rotation matrix (3, 3)). Every `from_*` function raises
`MessageError` with the reason on a malformed message (wrong sizes, non-finite values, a quaternion that
is not a rotation), so that a node can drop it with a logged reason instead of acting on it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension

from controllers.rotations import mat_to_quat, quat_to_mat

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
QUATERNION_NORM_TOLERANCE = 0.01


class MessageError(ValueError):
    """A message that must not be acted on; the text says why."""


# -- time ------------------------------------------------------------------------------------------
def to_stamp(seconds: float) -> Time:
    sec, nanosec = divmod(round(seconds * 1e9), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def from_stamp(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def header(stamp: float, frame_id: str = "") -> Header:
    return Header(stamp=to_stamp(stamp), frame_id=frame_id)


def _set_xyz(target, values) -> None:
    target.x, target.y, target.z = (float(v) for v in values)


# -- images ----------------------------------------------------------------------------------------
def to_image(rgb: np.ndarray, stamp: float, frame_id: str = "") -> Image:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"to_image needs a uint8 HxWx3 RGB array, got shape {rgb.shape}")
    msg = Image(header=header(stamp, frame_id))
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = rgb.shape[1] * 3
    msg.data = rgb.tobytes()  # bytes assignment is a single copy (~0.4 ms for 640x480)
    return msg


def from_image(msg: Image) -> np.ndarray:
    """uint8 HxWx3 RGB (a copy owned by numpy)."""
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise MessageError(f"image encoding {msg.encoding!r} is not supported; use one of {sorted(_CHANNELS)}")
    if msg.height == 0 or msg.width == 0:
        raise MessageError(f"image has no pixels ({msg.width}x{msg.height})")
    if msg.step < msg.width * channels:
        raise MessageError(f"image step {msg.step} is less than width*channels = {msg.width * channels}")
    if len(msg.data) != msg.step * msg.height:
        raise MessageError(f"image data has {len(msg.data)} bytes, step*height = {msg.step * msg.height}")
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == "rgb8":
        return pixels.copy()
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if msg.encoding == "rgba8":
        return np.ascontiguousarray(pixels[:, :, :3])
    return np.ascontiguousarray(pixels[:, :, 2::-1])  # bgra8


def to_compressed(rgb: np.ndarray, stamp: float, frame_id: str = "", quality: int = 90) -> CompressedImage:
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    msg = CompressedImage(header=header(stamp, frame_id))
    msg.format = "rgb8; jpeg compressed bgr8"  # image_transport's naming
    msg.data = jpeg.tobytes()
    return msg


def from_compressed(msg: CompressedImage) -> np.ndarray:
    if len(msg.data) == 0:
        raise MessageError("compressed image has no data")
    bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MessageError(f"compressed image ({msg.format!r}, {len(msg.data)} bytes) could not be decoded")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def camera_info(width: int, height: int, fovy_deg: float, stamp: float, frame_id: str = "") -> CameraInfo:
    """Pinhole intrinsics from a vertical field of view (MuJoCo's camera model), no distortion."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    msg = CameraInfo(header=header(stamp, frame_id))
    msg.width, msg.height = width, height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, width / 2, 0.0, 0.0, f, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# -- poses, twists, wrenches -------------------------------------------------------------------------
def to_pose(position, rotation, stamp: float, frame_id: str = "base") -> PoseStamped:
    msg = PoseStamped(header=header(stamp, frame_id))
    _set_xyz(msg.pose.position, position)
    w, x, y, z = mat_to_quat(np.asarray(rotation, float))
    q = msg.pose.orientation
    q.w, q.x, q.y, q.z = float(w), float(x), float(y), float(z)
    return msg


def from_pose(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    position = np.array([p.x, p.y, p.z])
    quat = np.array([q.w, q.x, q.y, q.z])
    if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quat))):
        raise MessageError(f"pose has non-finite values: position {position.tolist()}, quaternion {quat.tolist()}")
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise MessageError(f"pose orientation is not a unit quaternion (norm {norm:.4f})")
    return position, quat_to_mat(quat / norm)


def to_twist(linear, angular, stamp: float, frame_id: str = "base") -> TwistStamped:
    msg = TwistStamped(header=header(stamp, frame_id))
    _set_xyz(msg.twist.linear, linear)
    _set_xyz(msg.twist.angular, angular)
    return msg


def from_twist(msg: TwistStamped) -> tuple[np.ndarray, np.ndarray]:
    t = msg.twist
    linear = np.array([t.linear.x, t.linear.y, t.linear.z])
    angular = np.array([t.angular.x, t.angular.y, t.angular.z])
    if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular))):
        raise MessageError(f"twist has non-finite values: {linear.tolist()} {angular.tolist()}")
    return linear, angular


def to_wrench(force, torque, stamp: float, frame_id: str = "base") -> WrenchStamped:
    msg = WrenchStamped(header=header(stamp, frame_id))
    _set_xyz(msg.wrench.force, force)
    _set_xyz(msg.wrench.torque, torque)
    return msg


def from_wrench(msg: WrenchStamped) -> np.ndarray:
    w = msg.wrench
    return np.array([w.force.x, w.force.y, w.force.z, w.torque.x, w.torque.y, w.torque.z])


def to_joint_state(names, position, velocity, effort, stamp: float) -> JointState:
    msg = JointState(header=header(stamp))
    msg.name = list(names)
    msg.position = np.asarray(position, float)
    msg.velocity = np.asarray(velocity, float)
    msg.effort = np.asarray(effort, float)
    return msg


# -- vectors ---------------------------------------------------------------------------------------
def to_vector(values, label: str = "") -> Float32MultiArray:
    values = np.asarray(values, np.float32).reshape(-1)
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=label, size=values.size, stride=values.size)]
    msg.data = values
    return msg


def from_vector(msg: Float32MultiArray, size: int | None = None, what: str = "vector") -> np.ndarray:
    values = np.asarray(msg.data, np.float32)
    if size is not None and values.shape != (size,):
        raise MessageError(f"{what} has {values.size} values, expected {size}")
    if not np.all(np.isfinite(values)):
        raise MessageError(f"{what} has non-finite values: {values.tolist()}")
    return values
