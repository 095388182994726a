"""The franky bridge end to end against franky-sim: a MuJoCo FR3 that serves libfranka's real network
protocol on loopback. Processes: franky-sim's server, the bridge (franky -> libfranka), and in this one
the gym RobotEnv (the learner's side of the topic contract) with a probe playing the reward node. Nothing
here is our own stand-in for the arm: the bridge talks to the robot exactly as to an FR3 at its FCI address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from std_msgs.msg import Bool, Float64

from hardware.ros import qos
from tests.ros_helpers import BridgeProcess, Probe, fresh_domain_id

START = np.array([0.554, 0.0, 0.521])  # franky-sim's FR3 at its default joint angles (O_T_EE)


def _profile(hostname: str, **safety) -> dict:
    return {
        "name": "franky_sim_test", "bridge": "franky", "home_position": [0.5, 0.0, 0.45], "bridge_hz": 100.0,
        "action": {"translation_scale": 0.02, "rotation": False, "gripper": True},
        "safety": {"workspace_low": [0.3, -0.3, 0.1], "workspace_high": [0.7, 0.3, 0.6], "max_linear_speed": 0.25,
                   "max_translation_per_command": 0.03, "max_angular_speed": 0.5, "command_timeout_s": 0.3,
                   **safety},
        "driver": {"hostname": hostname, "realtime": False, "translational_stiffness": 2000.0,
                   "lower_joint_limits": [-2.70, -1.75, -2.85, -3.00, -2.75, 0.60, -2.95],
                   "upper_joint_limits": [2.70, 1.75, 2.85, -0.20, 2.75, 4.45, 2.95]},
    }


class FrankySim:
    """franky-sim's server in its own process (its physics thread must not share our GIL)."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "hardware.robots.franky_sim_server"],
                                        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
        line = self.process.stdout.readline()
        assert line.startswith("READY "), f"franky-sim did not start: {line!r}"
        self.hostname = line.split()[1]
        return self

    def reflex(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Cell:
    """franky-sim + the franky bridge + a RobotEnv, with success published as a reward node would."""

    def __init__(self, reward_node: bool = True, **safety):
        self.safety = safety
        self.reward_node = reward_node

    def __enter__(self):
        from robot_rl.ros.robot_env import make_robot_env

        self.sim = FrankySim().__enter__()
        self.domain = fresh_domain_id()
        self.profile = _profile(self.sim.hostname, **self.safety)
        self.bridge = BridgeProcess(self.domain, self.profile).__enter__()
        self.probe = Probe(self.domain)
        self.probe.listen(Float64, "gripper_width", qos.SENSOR)
        from geometry_msgs.msg import PoseStamped

        self.probe.listen(PoseStamped, "ee_pose", qos.SENSOR)
        self._stop = threading.Event()
        if self.reward_node:
            success = self.probe.publisher(Bool, "success", qos.EVENT)
            threading.Thread(target=lambda: [success.publish(Bool(data=False))
                                             for _ in iter(lambda: self._stop.wait(0.05), True)], daemon=True).start()
        self.env = make_robot_env("PickCube-v0", domain_id=self.domain, object_state_dim=0, episode_steps=200,
                                  action=self.profile["action"], safety=self.profile["safety"],
                                  reset_timeout_s=40.0, observation_timeout_s=10.0,
                                  success_topic=self.reward_node)
        return self

    def ee_position(self) -> np.ndarray:
        """The arm's newest measured position, as the bridge publishes it (not the env's last step)."""
        p = self.probe.latest["ee_pose"].pose.position
        return np.array([p.x, p.y, p.z])

    def settled(self, timeout: float = 10.0) -> np.ndarray:
        """The arm's position once it has stopped moving (< 1 mm in 0.2 s): franky-sim runs slower than
        real time on a loaded machine, so waits are for the arm, not for the clock."""
        deadline, last = time.monotonic() + timeout, self.ee_position()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.ee_position()
            if np.linalg.norm(now - last) < 0.001:
                return now
            last = now
        raise AssertionError(f"the arm did not settle within {timeout} s")

    def wait_status(self, key, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.env.robot_status.get(key):
                return self.env.robot_status
            time.sleep(0.05)
        raise AssertionError(f"no {key!r} in the bridge status after {timeout} s: {self.env.robot_status}")

    def __exit__(self, *exc):
        self._stop.set()
        self.env.close()
        self.probe.close()
        self.bridge.__exit__(*exc)
        self.sim.__exit__(*exc)


@pytest.fixture(scope="module")
def cell():
    with Cell() as c:
        yield c


def test_franky_bridge_starts_where_the_arm_is_and_homes_through_libfranka(cell):
    status = cell.wait_status("measured")
    assert not status["outside_workspace"] and not status["faults"]
    obs, info = cell.env.reset()  # homing at the filter's speed, through franky's tracking motion
    assert info["robot"]["reached"], info
    np.testing.assert_allclose(obs["proprio"][:3], cell.profile["home_position"], atol=0.012)


def test_franky_teleop_steps_move_the_arm_and_the_watchdog_holds_it(cell):
    obs, _ = cell.env.reset()
    start = obs["proprio"][:3].copy()
    for _ in range(5):  # +x at full scale: 2 cm per step, limited to 0.25 m/s (away from the joint limits)
        obs, _, terminated, truncated, info = cell.env.step(np.array([1.0, 0.0, 0.0, 1.0], np.float32))
        assert not (terminated or truncated) and not info["robot_faults"]
    moved = obs["proprio"][:3] - start
    assert 0.015 < moved[0] < 0.11, moved  # 5 steps of at most 2 cm; the arm lags (more on a loaded machine)
    assert np.all(np.abs(moved[1:]) < 0.02), moved
    cell.wait_status("watchdog_hold", timeout=3.0)  # no command for command_timeout_s: holds
    held = cell.settled()
    time.sleep(1.0)
    assert np.linalg.norm(cell.ee_position() - held) < 0.003


def test_franky_estop_holds_and_clear_resumes(cell):
    cell.env.reset()
    cell.env.estop()
    cell.wait_status("estop", timeout=3.0)
    held = cell.settled()  # homing may have ended with the arm still moving: it settles on the hold
    for _ in range(8):
        obs, _, _, truncated, info = cell.env.step(np.array([0.0, 0.0, -1.0, 1.0], np.float32))
    assert truncated and "estop" in info["robot_faults"]  # the episode ends on a hold
    assert np.linalg.norm(obs["proprio"][:3] - held) < 0.004
    with pytest.raises(RuntimeError, match="holding"):
        cell.env.reset()
    assert cell.env.clear_estop() == "e-stop cleared"
    cell.wait_status("measured")
    time.sleep(0.3)
    obs, info = cell.env.reset()
    assert info["robot"]["reached"]


def test_franky_gripper_closes_and_opens_through_frankys_gripper(cell):
    cell.env.reset()
    widths = []
    for opening, done in ((-1.0, lambda w: w < 0.01), (1.0, lambda w: w > 0.06)):
        for _ in range(60):  # the hand moves at 0.1 m/s (slower on a loaded machine): step until it is there
            obs, *_ = cell.env.step(np.array([0.0, 0.0, 0.0, opening], np.float32))
            if done(float(obs["proprio"][-1])):
                break
        widths.append(float(obs["proprio"][-1]))
    assert widths[0] < 0.01 and widths[1] > 0.06, widths  # empty grasp closes fully; open is the hand's width


def test_franky_reflex_ends_the_episode_and_recovers_only_on_the_operators_word(cell):
    cell.env.reset()
    cell.env.step(np.array([0.0, 0.5, 0.0, 1.0], np.float32))
    cell.sim.reflex()  # libfranka aborts the motion with a Cartesian reflex
    status = cell.wait_status("faults", timeout=5.0)
    assert "reflex" in status["faults"]["robot"] and "cartesian_reflex" in status["faults"]["robot"]
    _, _, terminated, truncated, info = cell.env.step(np.zeros(4, np.float32))
    assert truncated and not terminated and "robot" in info["robot_faults"]
    with pytest.raises(RuntimeError, match="recover"):
        cell.env.reset()  # an episode reset does not clear it
    assert cell.env.recover() == "recovered"
    deadline = time.monotonic() + 5
    while cell.env.robot_status.get("faults") and time.monotonic() < deadline:
        time.sleep(0.05)
    obs, info = cell.env.reset()  # a new tracking motion, from where the arm is
    assert info["robot"]["reached"]
    before = obs["proprio"][:3].copy()
    for _ in range(5):
        obs, *_ = cell.env.step(np.array([0.0, 0.0, -1.0, 1.0], np.float32))
    assert obs["proprio"][2] < before[2] - 0.04


def test_franky_an_arm_outside_the_box_at_startup_is_not_moved():
    # The box ends 12 cm below where franky-sim's arm starts: the bridge reports it and commands nothing.
    with FrankySim() as sim_:
        domain = fresh_domain_id()
        profile = _profile(sim_.hostname)
        profile["safety"]["workspace_high"] = [0.7, 0.3, 0.4]
        profile["home_position"] = [0.5, 0.0, 0.3]
        with BridgeProcess(domain, profile):
            probe = Probe(domain)
            try:
                from geometry_msgs.msg import PoseStamped
                from std_msgs.msg import String

                probe.listen(String, "status", qos.EVENT)
                probe.listen(PoseStamped, "ee_pose", qos.SENSOR)
                probe.wait_for(lambda: probe.status().get("outside_workspace"), timeout=15, what="outside_workspace")
                probe.wait_for(lambda: "ee_pose" in probe.latest, timeout=10, what="the measured pose")
                first = probe.latest["ee_pose"].pose.position
                time.sleep(2.0)
                now = probe.latest["ee_pose"].pose.position
                assert abs(now.z - first.z) < 0.002 and abs(now.x - first.x) < 0.002
                assert probe.status()["sent"] == 0
                assert abs(first.z - START[2]) < 0.01
            finally:
                probe.close()


def test_franky_teleop_records_demos_without_a_reward_node(tmp_path):
    # `robot-rl teleop` as the teleop launch runs it: no reward node, success from the operator's key.
    # A scripted operator drives the same device interface a SpaceMouse does: down, then success.
    from hardware.teleop import ScriptedDevice, TeleopConfig
    from robot_rl.episodes import load_episode
    from robot_rl.ros.teleop_session import run_teleop

    with Cell(reward_node=False) as cell:
        # The operator starts when the episode does, after homing (which takes longer on a loaded machine).
        first_poll: list[float] = []

        def clock() -> float:  # 0 when the device opens and at its first poll, then seconds since that poll
            if not first_poll:
                first_poll.append(float("nan"))
                return 0.0
            if first_poll[0] != first_poll[0]:
                first_poll[0] = time.monotonic()
            return time.monotonic() - first_poll[0]

        device = ScriptedDevice([(0.0, [0, 0, -1.0], []), (2.0, [0, 0, 0], ["success"]), (2.2, [0, 0, 0], [])],
                                TeleopConfig(use_rotation=False, use_gripper=True), clock=clock)
        saved = run_teleop(cell.env, device, tmp_path, task="PickCube-v0", episodes=1, log=lambda *_: None)
    episode = load_episode(saved[0])
    assert episode.success and episode.reward[-1] == 1.0
    assert episode.intervened.all() and len(episode.action) >= 10
    proprio = episode.observations["proprio"]
    assert proprio[-1][2] < proprio[0][2] - 0.03  # the arm went down under the operator's command


def test_franky_a_short_training_run_acts_through_libfranka(tmp_path):
    # `robot-rl train` with robot.enabled and a franky profile: every env step is a command through the
    # bridge to franky-sim's arm and its measured state back; the learner updates and checkpoints. A probe
    # plays the object tracker and reward node a real cell would have (a constant object, no success).
    import json as json_

    import yaml
    from std_msgs.msg import Float32MultiArray

    with FrankySim() as sim_:
        domain = fresh_domain_id()
        profile = _profile(sim_.hostname)
        path = tmp_path / "franky_sim.yaml"
        path.write_text(yaml.safe_dump(profile))
        with BridgeProcess(domain, profile):
            probe = Probe(domain)
            stop = threading.Event()
            success = probe.publisher(Bool, "success", qos.EVENT)
            tracker = probe.publisher(Float32MultiArray, "object_state", qos.SENSOR)

            def play_cell():
                while not stop.wait(0.05):
                    success.publish(Bool(data=False))
                    tracker.publish(Float32MultiArray(data=[0.5, 0.0, 0.42] + [0.0] * 7))

            threading.Thread(target=play_cell, daemon=True).start()
            from std_msgs.msg import String

            probe.listen(String, "status", qos.EVENT)
            probe.wait_for(lambda: probe.status().get("measured"), timeout=20, what="the bridge's measured pose")
            out = tmp_path / "run"
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "robot_rl.cli", "train", "--out", str(out), "--set", "robot.enabled=true",
                     f"robot.profile={path}", f"robot.domain_id={domain}", "total_env_steps=60", "learning_starts=30",
                     "num_demos=2", "eval_every=60", "eval_episodes=1", "progress=false", "tensorboard=false",
                     "agent.utd=1", "agent.batch_size=32"],
                    capture_output=True, text=True, timeout=400, cwd=os.path.dirname(os.path.dirname(__file__)))
            finally:
                stop.set()
                probe.close()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    config = json_.loads((out / "config.json").read_text())
    assert config["robot"]["enabled"] and config["robot"]["profile"] == str(path)
    evals = [json_.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert evals[-1]["env_step"] == 60
    assert list(out.glob("checkpoint*")) or list(out.glob("**/*.pt"))
