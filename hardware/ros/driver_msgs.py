"""Message types that robot drivers speak but PyPI publishes no wheel for (control_msgs' GripperCommand
action: franka_gripper's `gripper_action`, Robotiq's ros2_control gripper controller on humble). Their
definitions live in ros_interfaces/, field for field as upstream (so the wire type and its hash match),
and scripts/build_ros_interfaces.sh builds them with the ROS wheels' own rosidl toolchain (setup.sh runs it
with the `ros` extra). This module loads that build into a running interpreter.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

BUILD_HINT = "bash scripts/build_ros_interfaces.sh (scripts/setup.sh runs it with the `ros` extra)"
# The typesupport libraries must be loaded (globally) before the Python extension that needs them.
_LIBRARY_ORDER = ("generator_c", "typesupport_c", "typesupport_cpp", "typesupport_fastrtps_c",
                  "typesupport_fastrtps_cpp", "typesupport_introspection_c", "typesupport_introspection_cpp",
                  "generator_py")


def install_prefix() -> Path:
    """$ROBOT_RL_ROS_INTERFACES, else build/ros_interfaces/install in this checkout."""
    default = Path(__file__).resolve().parents[2] / "build" / "ros_interfaces" / "install"
    return Path(os.environ.get("ROBOT_RL_ROS_INTERFACES", default))


def load(package: str):
    """Import a package built by scripts/build_ros_interfaces.sh (e.g. "control_msgs")."""
    if package in sys.modules:
        return sys.modules[package]
    prefix = install_prefix()
    lib = prefix / "lib"
    site = lib / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    if not (site / package).is_dir():
        raise ImportError(f"the ROS 2 interface package {package!r} is not built at {prefix}: run {BUILD_HINT}")
    for part in _LIBRARY_ORDER:
        ctypes.CDLL(str(lib / f"lib{package}__rosidl_{part}.so"), mode=ctypes.RTLD_GLOBAL)
    if str(site) not in sys.path:
        sys.path.append(str(site))
    import importlib

    return importlib.import_module(package)
