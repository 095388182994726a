"""The Franka command path through the franky bridge, against franky-sim (a MuJoCo FR3 serving libfranka's
network protocol on loopback): target published on our topic -> bridge (guard, safety filter) -> franky's
tracking motion (libfranka's 1 kHz torque loop) -> franky-sim -> robot state back -> ee_pose on our topic.

    python benchmarks/franky_command_path.py [--quick] [--out FILE.json]

Figures: the command's latency from the sender's stamp to the bridge (p50/p99), from publishing a 1 cm step
of the target to the first ee_pose that has moved 1 mm towards it (p50/p99: transport + the impedance
law's response), the bridge's achieved send rate against its configured `bridge_hz`, and the ee_pose rate.
What it flatters: one machine, loopback, franky-sim's own physics (its arm responds in ~20 ms; a real FR3's
joint friction and a loaded network differ), and no real-time kernel (RealtimeConfig.Ignore).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from report import report  # noqa: E402

DOMAIN = 150 + os.getpid() % 50
BRIDGE_HZ = 100.0


def _bridge(profile: dict, domain_id: int) -> None:
    from hardware.robots.bridges import main
    from hardware.robots.profile import profile_from_dict

    main(profile_from_dict(profile), domain_id=domain_id)


def measure(steps: int) -> dict:
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import String

    from hardware.ros import messages as M
    from hardware.ros import qos, topics
    from hardware.ros.runtime import BackgroundNode

    sim = subprocess.Popen([sys.executable, "-m", "hardware.robots.franky_sim_server"], stdout=subprocess.PIPE,
                           text=True, cwd=ROOT)
    hostname = sim.stdout.readline().split()[1]
    profile = {"name": "franky_bench", "bridge": "franky", "home_position": [0.5, 0.0, 0.45], "bridge_hz": BRIDGE_HZ,
               "safety": {"workspace_low": [0.3, -0.3, 0.1], "workspace_high": [0.7, 0.3, 0.6],
                          "max_linear_speed": 0.25, "max_translation_per_command": 0.03, "command_timeout_s": 0.3},
               "driver": {"hostname": hostname, "realtime": False, "translational_stiffness": 2000.0}}
    bridge = mp.get_context("spawn").Process(target=_bridge, args=(profile, DOMAIN), daemon=True)
    bridge.start()
    ros = BackgroundNode("bench", namespace="robot", domain_id=DOMAIN)
    poses: list[tuple[float, np.ndarray]] = []
    status: list[tuple[float, dict]] = []
    ros.node.create_subscription(PoseStamped, topics.EE_POSE,
                                 lambda m: poses.append((time.monotonic(), M.from_pose(m)[0])), qos.SENSOR)
    ros.node.create_subscription(String, topics.STATUS,
                                 lambda m: status.append((time.monotonic(), json.loads(m.data))), qos.EVENT)
    pub = ros.node.create_publisher(PoseStamped, topics.TARGET_POSE, qos.COMMAND)
    ros.start()
    try:
        deadline = time.monotonic() + 30
        while not (status and status[-1][1]["measured"] and len(poses) > 10):
            if time.monotonic() > deadline:
                raise RuntimeError("the franky bridge did not report a measured pose within 30 s")
            time.sleep(0.05)
        start = poses[-1][1].copy()
        rotation = M.from_pose(M.to_pose(start, np.diag([1.0, -1.0, -1.0]), time.time()))[1]
        published: list[tuple[float, float]] = []  # (monotonic, direction of the step in x)
        t0 = time.monotonic()
        n0 = len(poses)
        for k in range(steps):
            direction = 1.0 if k % 2 == 0 else -1.0
            target = start + np.array([0.01 * (direction > 0), 0.0, 0.0])  # 1 cm out, then back
            published.append((time.monotonic(), direction))
            pub.publish(M.to_pose(target, rotation, time.time()))
            time.sleep(0.25)  # the arm settles between steps: each response is measured from rest
        wall = time.monotonic() - t0
        time.sleep(0.3)
        during = [(t, st["sent"]) for t, st in status if t0 <= t <= t0 + wall]
        send_rate = (during[-1][1] - during[0][1]) / (during[-1][0] - during[0][0])
        responses = []
        for when, direction in published:
            before = [p for t, p in poses if t <= when]
            if not before:
                continue
            x0 = before[-1][0]
            moved = next((t for t, p in poses if t > when and direction * (p[0] - x0) >= 0.001), None)
            if moved is not None and moved - when < 0.25:
                responses.append(moved - when)
        commands = status[-1][1]["commands"]
        ms = 1e3 * np.asarray(responses)
        return {
            "steps": steps,
            "command_to_bridge_ms_p50": commands.get("latency_ms_p50", float("nan")),
            "command_to_bridge_ms_p99": commands.get("latency_ms_p99", float("nan")),
            "target_to_first_1mm_motion_ms_p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "target_to_first_1mm_motion_ms_p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
            "responses_measured": len(responses),
            "bridge_send_rate_hz": send_rate,
            "bridge_configured_rate_hz": BRIDGE_HZ,
            "ee_pose_rate_hz": (len([t for t, _ in poses[n0:] if t <= t0 + wall])) / wall,
        }
    finally:
        ros.close()
        bridge.terminate()
        bridge.join(10)
        sim.terminate()
        sim.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 target steps instead of 200")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    report({"quick": args.quick, **measure(20 if args.quick else 200)}, args.out)


if __name__ == "__main__":
    main()
