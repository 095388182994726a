"""The ROS 2 reward node: frames from a camera node in another process, a labeler on a worker thread that
never blocks (the newest frames replace unlabelled ones), failures counted as no label."""

from __future__ import annotations

import json
import time

from std_msgs.msg import Bool, Float32, String

from hardware.ros import qos, topics
from robot_rl.rewards import Label
from robot_rl.rewards.base import Labeler
from tests.ros_helpers import CameraProcess, Probe, fresh_domain_id


class SlowBrightness(Labeler):
    """Reward = mean brightness of the frames; slow on purpose (0.2 s), and fails every third call."""

    name = "slow_brightness"

    def __init__(self):
        self.calls = 0

    def label(self, images, task):
        self.calls += 1
        time.sleep(0.2)
        assert task == "lift the cube" and set(images) == {"front"}
        if self.calls % 3 == 0:
            raise RuntimeError("model server hiccup")
        brightness = float(images["front"].mean()) / 255.0
        return Label(reward=brightness, success=brightness > 0.25)


def test_the_reward_node_labels_the_newest_frames_without_blocking_and_survives_a_failing_labeler():
    from hardware.ros.runtime import BackgroundNode
    from robot_rl.ros.reward_node import RewardNode

    domain = fresh_domain_id()
    probe = Probe(domain)
    probe.listen(Float32, topics.REWARD, qos.EVENT)
    probe.listen(Bool, topics.SUCCESS, qos.EVENT)
    probe.listen(String, "reward_status", qos.EVENT)
    host = BackgroundNode("reward_host", domain_id=domain)  # a context for the node under test
    labeler = SlowBrightness()
    node = host.add(RewardNode(labeler, "lift the cube", ("front",), context=host.context))
    host.start()
    config = {"name": "front", "source": "pattern", "width": 64, "height": 64, "fps": 30.0}
    try:
        with CameraProcess(domain, config, seconds=6.0):
            probe.wait_for(lambda: probe.counts.get(topics.REWARD, 0) >= 6, timeout=25.0, what="six labels")
        status = json.loads(probe.latest["reward_status"].data)
        reward = probe.latest[topics.REWARD].data
        assert 0.25 < reward < 0.75 and probe.latest[topics.SUCCESS].data  # the pattern's mean brightness
        assert status["skipped"] > 2 * status["labelled"]  # 30 fps in, 5 labels/s out: frames replaced, not queued
        assert status["no_label"] >= 2 and status["labelled"] >= 6  # every third call failed; the node went on
        assert status["latency_ms_last"] < 1000
    finally:
        node.destroy_node()
        host.close()
        probe.close()


def _serve(argv: list[str]) -> None:
    from robot_rl.cli import main

    main(argv)


def test_rewards_serve_runs_a_vlm_labeler_as_the_reward_node():
    """`robot-rl rewards serve` in its own process: camera frames in, the VLM's (here a loopback
    OpenAI-compatible server's) verdict out as reward and success."""
    from tests.ros_helpers import ChildProcess
    from tests.vlm_server import JudgeServer

    domain = fresh_domain_id()
    judge = JudgeServer()
    probe = Probe(domain)
    probe.listen(Float32, topics.REWARD, qos.EVENT)
    probe.listen(Bool, topics.SUCCESS, qos.EVENT)
    config = {"name": "front", "source": "pattern", "width": 64, "height": 64, "fps": 10.0}
    argv = ["rewards", "serve", "--model", f"vlm:{judge.url}#judge", "--prompt", "lift the cube", "--cameras", "front",
            "--domain-id", str(domain), "--duration", "15"]
    try:
        with ChildProcess(_serve, argv), CameraProcess(domain, config, seconds=15.0):
            probe.wait_for(lambda: probe.counts.get(topics.REWARD, 0) >= 3, timeout=25.0, what="three labels")
        asked = [r for r in judge.requests if "lift the cube" in r["messages"][0]["content"][0]["text"]]
        assert len(asked) >= 1  # repeated frames are answered from the cache
        assert probe.latest[topics.SUCCESS].data is False  # the pattern is not red: the judge says No
        assert probe.latest[topics.REWARD].data == 0.0
    finally:
        probe.close()
        judge.close()
