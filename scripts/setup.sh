#!/usr/bin/env bash
# Install robot_rl and everything it needs on a fresh Debian/Ubuntu machine.
#   bash scripts/setup.sh          # the package and its runtime dependencies
#   bash scripts/setup.sh dev      # ... plus test tools and a headless Chromium (extras: dev, ros,
#                                    # vlm, data, teleop; comma-separated)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"

# Offscreen rendering for pixel observations: EGL (default) or OSMesa, both software GL without a GPU.
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    libegl1 libgl1 libgles2 libosmesa6 libglfw3 >/dev/null
  # With ROS: a compiler and CMake build the driver message types PyPI has no wheel for.
  case ",$extras," in
    *,ros,*) DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
               cmake g++ >/dev/null ;;
  esac
  # The tests drive the web operator console in a real headless browser.
  case ",$extras," in
    *,dev,*) DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
               chromium chromium-driver >/dev/null ;;
  esac
fi

# torch first and exactly: any other spec pulls several GB of CUDA wheels on a CPU machine.
"$python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
if [ -n "$extras" ]; then
  "$python" -m pip install -q --disable-pip-version-check -e ".[${extras}]"
else
  "$python" -m pip install -q --disable-pip-version-check -e .
fi

# Driver message types PyPI has no wheel for (control_msgs' GripperCommand), built from ros_interfaces/.
case ",$extras," in
  *,ros,*) PYTHON="$python" bash scripts/build_ros_interfaces.sh ;;
esac
