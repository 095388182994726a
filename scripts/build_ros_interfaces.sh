#!/usr/bin/env bash
# Build the ROS 2 interface packages that drivers speak but PyPI has no wheel for (control_msgs'
# GripperCommand action, for franka_gripper and Robotiq grippers) from the ROS 2 Kilted wheels' own
# rosidl toolchain. About 30 s on 2 cores; the result (2 MB) goes to build/ros_interfaces/install, where
# hardware/ros/driver_msgs.py finds it. scripts/setup.sh runs this with the `ros` extra.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
work="$PWD/build/ros_interfaces"
prefix="$("$python" -c 'import sys; print(sys.prefix)')"  # where the ROS wheels put share/ and lib/
rm -rf "$work/build" "$work/install"
mkdir -p "$work"
# A venv that sees the system's rosidl generators (the versions rclpy runs with) and adds the build-only
# wheels, so nothing is installed into the system Python for the build.
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check \
  ros-kilted-ament-cmake ros-kilted-rosidl-default-generators ros-kilted-ament-package catkin-pkg \
  ros-kilted-ament-cmake-include-directories ros-kilted-rosidl-core-generators ros-kilted-ament-cmake-ros-core
export AMENT_PREFIX_PATH="$work/venv:$prefix" CMAKE_PREFIX_PATH="$work/venv:$prefix" PATH="$work/venv/bin:$PATH"
for package in ros_interfaces/*/; do
  name="$(basename "$package")"
  cmake -S "$package" -B "$work/build/$name" -DCMAKE_INSTALL_PREFIX="$work/install" \
    -DPython3_EXECUTABLE="$work/venv/bin/python" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$work/build/$name" -j"$(nproc)" >/dev/null
  cmake --install "$work/build/$name" >/dev/null
done
echo "ROS 2 interfaces built into $work/install"
