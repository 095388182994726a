"""ROS 2 loop figures: closed-loop control through sim_robot_node, a 640x480 camera stream, and training
through ROS 2 against in-process.

    python benchmarks/ros_loop.py [--quick] [--out FILE.json] [--parts loop camera training]

- loop: a pixel SAC policy (random weights: inference cost, not skill) drives a real-time sim_robot_node
  in another process with two 128x128 cameras at 10 Hz, through `RobotEnv`: achieved control rate,
  observation age p50/p99 (publish stamp to the policy's use), command latency p50/p99 (the env's
  publish stamp to the robot's receipt), frames dropped per camera, control-period overruns.
- camera: a camera_node (synthetic pattern source) publishes 640x480 rgb8 at 30 Hz to a subscriber in
  another process, best effort, with our Fast DDS profile (16 MB shared memory + UDP) and with Fast DDS's
  builtin default transports: achieved rate, latency p50/p99, frames dropped in steady state.
- training: `robot-rl train` on pick-cube from state, in-process vs through ROS 2 against a lockstep
  sim_robot_node (same config, same budget): steps to 90% success, final success, wall-clock and ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import report

DOMAIN = 100 + os.getpid() % 50


def _sim_robot(parameters: dict, domain_id: int) -> None:
    from robot_rl.ros.sim_robot_node import main

    main(parameters=parameters, domain_id=domain_id)


def _percentiles(name: str, values_s, unit_scale: float = 1e3) -> dict:
    ms = unit_scale * np.asarray(values_s, float)
    return {f"{name}_ms_p50": float(np.percentile(ms, 50)), f"{name}_ms_p99": float(np.percentile(ms, 99))}


def closed_loop(steps: int) -> dict:
    import torch

    from robot_rl.agents.sac import SACAgent, SACConfig
    from robot_rl.replay import ObsSpec, flatten_obs
    from robot_rl.ros.robot_env import make_robot_env

    torch.set_num_threads(1)
    spawn = mp.get_context("spawn")
    robot = spawn.Process(target=_sim_robot, args=({"cameras": ["front", "wrist"], "image_size": 128}, DOMAIN),
                          daemon=True)
    robot.start()
    env = make_robot_env("PickCube-v0", obs_mode="pixels", image_size=128, domain_id=DOMAIN, episode_steps=100)
    try:
        obs, _ = env.reset()
        agent = SACAgent(ObsSpec.from_obs(obs), 4, SACConfig())
        first_status = dict(env.robot_status)
        first_received = env.received
        ages, started = [], time.monotonic()
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(agent.act(flatten_obs(obs)))
            ages.append(info["observation_age_s"])
            if terminated or truncated:
                obs, _ = env.reset()
        elapsed = time.monotonic() - started
        time.sleep(0.3)  # the last frames in flight
        status, received = env.robot_status, env.received
        published = status["frames_published"] - first_status["frames_published"]
        dropped = {c: published - (received[f"cameras/{c}/image_raw"] - first_received[f"cameras/{c}/image_raw"])
                   for c in ("front", "wrist")}
        commands = status["commands"]
        return {"loop_control_hz_target": 10.0, "loop_control_hz_achieved": steps / elapsed,
                **_percentiles("loop_observation_age", ages),
                "loop_command_latency_ms_p50": commands.get("latency_ms_p50"),
                "loop_command_latency_ms_p99": commands.get("latency_ms_p99"),
                "loop_frames_published_per_camera": published,
                "loop_frames_dropped_front": max(dropped["front"], 0), "loop_frames_dropped_wrist": max(dropped["wrist"], 0),
                "loop_overruns": env.overruns}
    finally:
        env.close()
        robot.terminate()
        robot.join(10)


def _camera_publisher(seconds: float, domain_id: int, results) -> None:
    from hardware.cameras import CameraConfig
    from hardware.cameras.ros_node import main

    results.put(("published", main(CameraConfig(name="front", source="pattern", width=640, height=480, fps=30.0),
                                   domain_id=domain_id, duration_s=seconds)))


def _camera_subscriber(seconds: float, domain_id: int, results) -> None:
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from hardware.ros import messages as M
    from hardware.ros import qos, topics

    qos.use_large_data_transport()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = Node("camera_bench", namespace="robot", context=context)
    latencies, stamps, shapes = [], [], set()

    def on_image(msg):
        stamp = M.from_stamp(msg.header.stamp)
        latencies.append(time.time() - stamp)
        stamps.append(stamp)
        shapes.add(M.from_image(msg).shape)

    node.create_subscription(Image, topics.camera_image("front"), on_image, qos.SENSOR)
    results.put(("ready", True))
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    results.put(("received", latencies, stamps, sorted(shapes)))
    node.destroy_node()
    context.try_shutdown()


def camera_stream(seconds: float, transport: str) -> dict:
    """transport "robot_rl": our Fast DDS profile (16 MB shared memory + UDP); "fastdds_default": Fast
    DDS's builtin default transports. Drops are counted in steady state, between the first and the last
    frame received (frames lost while the two processes discover each other are not drops)."""
    spawn = mp.get_context("spawn")
    results = spawn.Queue()
    saved = {k: os.environ.get(k) for k in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")}
    for key in saved:
        os.environ.pop(key, None)
    if transport == "fastdds_default":
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "DEFAULT"  # the children inherit it
    try:
        domain = DOMAIN + (1 if transport == "robot_rl" else 2)
        subscriber = spawn.Process(target=_camera_subscriber, args=(seconds + 6.0, domain, results))
        subscriber.start()
        assert results.get(timeout=60)[0] == "ready"
        time.sleep(2.0)  # discovery
        publisher = spawn.Process(target=_camera_publisher, args=(seconds, domain, results))
        publisher.start()
        got = {}
        while len(got) < 2:
            item = results.get(timeout=seconds + 60)
            got[item[0]] = item[1:]
        publisher.join(10)
        subscriber.join(10)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    published = got["published"][0]
    latencies, stamps = got["received"][0], got["received"][1]
    name = f"camera_640x480_30hz_{transport}"
    out = {f"{name}_published": published, f"{name}_received": len(latencies)}
    if len(stamps) >= 2:
        expected = round((max(stamps) - min(stamps)) * 30.0) + 1
        out[f"{name}_steady_state_dropped_pct"] = 100.0 * max(expected - len(stamps), 0) / expected
        out[f"{name}_achieved_hz"] = (len(stamps) - 1) / (max(stamps) - min(stamps))
        out.update(_percentiles(f"{name}_latency", latencies))
    return out


def training(steps: int, seeds: list[int]) -> dict:
    """Per seed: one in-process run, then one through ROS 2 (sequential, so the wall-clocks compare)."""
    from sample_efficiency import _run_one

    root = Path(tempfile.mkdtemp(prefix="ros_train_"))
    values = {"env": {"id": "PickCube-v0"}, "num_demos": 10, "total_env_steps": steps, "eval_every": max(steps // 12, 250)}
    out: dict = {"training_env_steps": steps, "training_seeds": seeds}
    walls = {"in_process": 0.0, "through_ros": 0.0}
    for seed in seeds:
        runs = {"in_process": _run_one("in_process", values, seed, root)}
        spawn = mp.get_context("spawn")
        robot = spawn.Process(target=_sim_robot, args=({"lockstep": True, "cameras": [], "seed": seed}, DOMAIN + 3),
                              daemon=True)
        robot.start()
        try:
            runs["through_ros"] = _run_one("through_ros", {**values, "robot": {"enabled": True, "domain_id": DOMAIN + 3}},
                                           seed, root)
        finally:
            robot.terminate()
            robot.join(10)
        for name, run in runs.items():
            if "error" in run:
                out[f"training_{name}_seed{seed}_error"] = run["error"][-800:]
                continue
            out[f"training_{name}_seed{seed}_env_steps_to_90pct"] = run["steps_to_90"]
            out[f"training_{name}_seed{seed}_final_success"] = run["final_success"]
            out[f"training_{name}_seed{seed}_wall_s"] = run["wall_s"]
            walls[name] += run["wall_s"]
    if all(walls.values()):
        out["training_wall_clock_ratio_ros_over_in_process"] = walls["through_ros"] / walls["in_process"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 control steps, 5 s of camera, 1,500 training steps")
    parser.add_argument("--out", default=None)
    parser.add_argument("--parts", nargs="+", default=["loop", "camera", "training"],
                        choices=["loop", "camera", "training"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (full run)")
    args = parser.parse_args()
    results: dict = {"quick": args.quick}
    if "loop" in args.parts:
        results.update(closed_loop(100 if args.quick else 600))
    if "camera" in args.parts:
        for transport in ("robot_rl", "fastdds_default"):
            results.update(camera_stream(5.0 if args.quick else 20.0, transport))
    if "training" in args.parts:
        results.update(training(1_500 if args.quick else 6_000, [0] if args.quick else args.seeds))
    report(results, args.out)


if __name__ == "__main__":
    main()
