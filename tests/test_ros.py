"""ROS 2: message conversions, the robot-side command guard, and sim_robot_node driven through real
rclpy nodes in separate processes (own ROS_DOMAIN_ID per test)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import Trigger

from controllers.rotations import exp_map
from hardware.ros import messages as M
from hardware.ros import qos, topics
from hardware.ros.guard import CommandChecks, CommandGuard
from tests.ros_helpers import ObsPickPolicy, Probe, SimRobotProcess, TeleopNodeProcess, fresh_domain_id


# -- conversions ------------------------------------------------------------------------------------
def test_image_round_trips_in_every_supported_encoding():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    msg = M.to_image(rgb, 12.5, "front")
    assert (msg.width, msg.height, msg.step, msg.encoding) == (5, 6, 15, "rgb8")
    assert M.from_stamp(msg.header.stamp) == pytest.approx(12.5)
    np.testing.assert_array_equal(M.from_image(msg), rgb)
    for encoding, pixels in (("bgr8", rgb[:, :, ::-1]), ("rgba8", np.dstack([rgb, np.full((6, 5), 7, np.uint8)])),
                             ("bgra8", np.dstack([rgb[:, :, ::-1], np.zeros((6, 5), np.uint8)]))):
        other = Image(height=6, width=5, encoding=encoding, step=5 * pixels.shape[2],
                      data=np.ascontiguousarray(pixels).tobytes())
        np.testing.assert_array_equal(M.from_image(other), rgb, err_msg=encoding)
    padded = Image(height=6, width=5, encoding="rgb8", step=20,  # rows padded to 20 bytes
                   data=np.pad(rgb.reshape(6, 15), ((0, 0), (0, 5))).tobytes())
    np.testing.assert_array_equal(M.from_image(padded), rgb)
    mono = Image(height=6, width=5, encoding="mono8", step=5, data=rgb[:, :, 0].tobytes())
    np.testing.assert_array_equal(M.from_image(mono)[:, :, 2], rgb[:, :, 0])


def test_malformed_images_are_rejected_with_the_reason():
    with pytest.raises(M.MessageError, match="bytes"):
        M.from_image(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(47)))
    with pytest.raises(M.MessageError, match="encoding"):
        M.from_image(Image(height=4, width=4, encoding="16UC1", step=8, data=bytes(32)))
    with pytest.raises(M.MessageError, match="step"):
        M.from_image(Image(height=4, width=4, encoding="rgb8", step=8, data=bytes(32)))
    with pytest.raises(M.MessageError, match="decoded"):
        M.from_compressed(CompressedImage(format="jpeg", data=b"not a jpeg"))


def test_jpeg_round_trip_is_close():
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.dstack([xx * 4, yy * 5, (xx + yy) * 2]).astype(np.uint8)
    back = M.from_compressed(M.to_compressed(rgb, 1.0, quality=95))
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 3


def test_pose_round_trip_and_rejections():
    rotation = exp_map(np.array([0.3, -0.2, 1.1]))
    position, back = M.from_pose(M.to_pose([0.4, -0.1, 0.2], rotation, 3.0))
    np.testing.assert_allclose(position, [0.4, -0.1, 0.2])
    np.testing.assert_allclose(back, rotation, atol=1e-9)
    bad = M.to_pose([0.4, 0.0, 0.2], np.eye(3), 3.0)
    bad.pose.position.y = float("nan")
    with pytest.raises(M.MessageError, match="non-finite"):
        M.from_pose(bad)
    zero = M.to_pose([0.4, 0.0, 0.2], np.eye(3), 3.0)
    zero.pose.orientation.w = 0.0
    with pytest.raises(M.MessageError, match="unit quaternion"):
        M.from_pose(zero)


def test_command_guard_drops_stale_future_foreign_frame_and_bad_gripper_commands():
    warnings = []
    guard = CommandGuard(CommandChecks(max_age_s=0.5), warn=warnings.append)
    now = 1000.0
    assert guard.pose(M.to_pose([0.5, 0, 0.2], np.eye(3), now - 0.1), now) is not None
    assert guard.pose(M.to_pose([0.5, 0, 0.2], np.eye(3), now - 0.8), now) is None
    assert "stale" in guard.last_rejection
    assert guard.pose(M.to_pose([0.5, 0, 0.2], np.eye(3), now + 1.0), now) is None
    assert "future" in guard.last_rejection
    assert guard.pose(M.to_pose([0.5, 0, 0.2], np.eye(3), now, frame_id="camera"), now) is None
    assert "frame" in guard.last_rejection
    assert guard.gripper(Float64(data=1.5)) is None and guard.gripper(Float64(data=float("nan"))) is None
    assert guard.gripper(Float64(data=0.25)) == 0.25
    assert guard.status()["rejected"] == {"target_pose": 3, "gripper_command": 2}
    assert len(warnings) == 5 and all(w.startswith("rejected ") for w in warnings)
    # A twist moves the target while fresh, and stops doing so when stale.
    assert guard.twist(M.to_twist([0.1, 0, 0], [0, 0, 0], now), now)
    position, _ = guard.twist_target(np.zeros(3), np.eye(3), 0.1, now + 0.05, timeout_s=0.5)
    np.testing.assert_allclose(position, [0.01, 0, 0])
    assert guard.twist_target(np.zeros(3), np.eye(3), 0.1, now + 0.6, timeout_s=0.5) is None


# -- the sim behind ROS 2, from another process ------------------------------------------------------
def test_the_ros_env_runs_whole_pick_cube_episodes_against_a_lockstep_sim_node():
    from robot_rl.ros.robot_env import make_robot_env

    domain = fresh_domain_id()
    with SimRobotProcess(domain, lockstep=True, cameras=[], seed=3):
        env = make_robot_env("PickCube-v0", lockstep=True, domain_id=domain)
        try:
            policy = ObsPickPolicy()
            results = []
            for _ in range(3):
                obs, info = env.reset()
                assert env.observation_space.contains(obs)
                policy.reset()
                done = False
                while not done:
                    obs, reward, terminated, truncated, info = env.step(policy.act(obs))
                    done = terminated or truncated
                results.append((terminated, reward, env.steps))
            assert all(t and r == 1.0 and steps < 40 for t, r, steps in results), results
            assert info["observation_age_s"] < 1.0
        finally:
            env.close()


def test_the_ros_env_sees_pixels_at_the_policy_size_and_a_real_time_robot_at_a_fixed_rate():
    from robot_rl.ros.robot_env import make_robot_env

    domain = fresh_domain_id()
    with SimRobotProcess(domain, cameras=["front", "wrist"], image_size=96, control_hz=20.0):
        env = make_robot_env("PickCube-v0", obs_mode="pixels", image_size=48, control_hz=20.0,
                             domain_id=domain, episode_steps=10)
        try:
            obs, _ = env.reset()
            assert env.observation_space.contains(obs)
            assert obs["images"]["front"].shape == (48, 48, 3) and obs["images"]["front"].std() > 5
            started = time.monotonic()
            ages, done = [], False
            while not done:
                obs, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
                ages.append(info["observation_age_s"])
                done = terminated or truncated
            elapsed = time.monotonic() - started
            assert truncated and env.steps == 10
            assert 0.4 <= elapsed < 1.5  # 10 steps at 20 Hz
            assert max(ages) < env.config.max_observation_age_s
        finally:
            env.close()


@pytest.fixture(scope="module")
def realtime_robot():
    """One real-time sim node (20 Hz control, 0.3 s watchdog) and a probe, shared by the safety tests."""
    domain = fresh_domain_id()
    with SimRobotProcess(domain, cameras=[], control_hz=20.0, command_timeout_s=0.3) as robot:
        probe = Probe(domain)
        probe.listen(PoseStamped, "ee_pose", qos.SENSOR)
        probe.listen(String, "status", qos.EVENT)
        reset = probe.node.create_client(Trigger, topics.RESET)
        clear = probe.node.create_client(Trigger, topics.CLEAR_ESTOP)
        assert reset.wait_for_service(timeout_sec=20)
        probe.wait_for(lambda: "ee_pose" in probe.latest, what="the robot's pose")
        probe.commands = probe.publisher(PoseStamped, topics.TARGET_POSE, qos.COMMAND)
        probe.gripper = probe.publisher(Float64, topics.GRIPPER_COMMAND, qos.COMMAND)
        probe.estop = probe.publisher(Bool, topics.ESTOP, qos.EVENT)

        def call(client):
            future = client.call_async(Trigger.Request())
            probe.wait_for(future.done, what="a service answer")
            return future.result()

        probe.reset = lambda: call(reset)
        probe.clear_estop = lambda: call(clear)
        yield robot, probe
        probe.close()


def _position(probe) -> np.ndarray:
    return M.from_pose(probe.latest["ee_pose"])[0]


def _stream(probe, start, velocity, seconds, rate=20.0, **pose_kwargs):
    """Publish target poses moving from `start` at `velocity` (m/s) for `seconds`."""
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        target = start + np.asarray(velocity) * elapsed
        probe.commands.publish(M.to_pose(target, M.from_pose(probe.latest["ee_pose"])[1], time.time(), **pose_kwargs))
        time.sleep(1.0 / rate)


def test_the_watchdog_holds_the_pose_when_commands_stop(realtime_robot):
    _, probe = realtime_robot
    probe.reset()
    time.sleep(0.3)
    start = _position(probe)
    _stream(probe, start, [0, 0, 0.1], 0.8)  # rising at 10 cm/s
    moved = _position(probe)
    assert moved[2] - start[2] > 0.04
    assert probe.wait_for(lambda: probe.status().get("watchdog_hold"), timeout=3.0, what="the watchdog hold")
    held = _position(probe)
    time.sleep(0.5)
    assert np.linalg.norm(_position(probe) - held) < 0.003  # no drift while holding


def test_the_e_stop_latches_until_cleared(realtime_robot):
    _, probe = realtime_robot
    probe.reset()
    time.sleep(0.3)
    probe.estop.publish(Bool(data=True))
    probe.wait_for(lambda: probe.status().get("estop"), timeout=3.0, what="the e-stop")
    start = _position(probe)
    _stream(probe, start, [0, 0, 0.1], 0.6)  # commands keep coming: ignored
    assert np.linalg.norm(_position(probe) - start) < 0.003
    probe.estop.publish(Bool(data=False))  # False does not release it
    probe.reset()  # nor does a reset
    time.sleep(0.2)
    assert probe.status()["estop"]
    assert probe.clear_estop().message == "e-stop cleared"
    start = _position(probe)
    _stream(probe, start, [0, 0, 0.1], 0.6)
    assert _position(probe)[2] - start[2] > 0.03 and not probe.status()["estop"]


def test_malformed_commands_are_dropped_with_a_logged_reason(realtime_robot):
    _, probe = realtime_robot
    probe.reset()
    time.sleep(0.3)
    start = _position(probe)
    before = probe.status()["commands"]["rejected"]
    _, rotation = M.from_pose(probe.latest["ee_pose"])
    far = start + [0, 0, 0.05]
    nan = M.to_pose(far, rotation, time.time())
    nan.pose.position.x = float("nan")
    not_unit = M.to_pose(far, rotation, time.time())
    q = not_unit.pose.orientation
    q.w, q.x, q.y, q.z = 2 * q.w, 2 * q.x, 2 * q.y, 2 * q.z
    for msg, reason in ((nan, "non-finite"), (not_unit, "unit quaternion"),
                        (M.to_pose(far, rotation, time.time() - 5.0), "stale"),
                        (M.to_pose(far, rotation, time.time(), frame_id="world"), "frame")):
        probe.commands.publish(msg)
        probe.wait_for(lambda reason=reason: reason in probe.status()["commands"]["last_rejection"],
                       timeout=3.0, what=f"a rejection for {reason}")
    probe.gripper.publish(Float64(data=-2.0))
    probe.wait_for(lambda: "gripper_command" in probe.status()["commands"]["last_rejection"], timeout=3.0,
                   what="the gripper rejection")
    rejected = probe.status()["commands"]["rejected"]
    assert rejected["target_pose"] - before.get("target_pose", 0) == 4
    time.sleep(0.3)
    assert np.linalg.norm(_position(probe) - start) < 0.003  # none of them moved the arm


def test_the_ros_env_explains_a_missing_robot():
    from robot_rl.ros.robot_env import make_robot_env

    env = make_robot_env("PickCube-v0", domain_id=fresh_domain_id(), reset_timeout_s=0.5)
    try:
        with pytest.raises(ConnectionError, match="sim-robot --namespace robot"):
            env.reset()
    finally:
        env.close()


def test_a_teleop_node_drives_a_remote_reader_and_goes_inactive_when_it_stops():
    from hardware.teleop import OperatorEvent, TeleopConfig
    from hardware.teleop.ros import STALE_S, RosTeleopDevice

    domain = fresh_domain_id()
    reader = RosTeleopDevice(TeleopConfig(), domain_id=domain)
    # Untouched until 6 s, then pushes +x and presses success, lets go at 7 s. The success press is sent
    # once: discovery (~2.5 s here, over 3 s on a loaded CI machine) must be over by then.
    script = [(6.0, [1.0, 0, 0], ["success"]), (6.2, [1.0, 0, 0], []), (7.0, [0, 0, 0], [])]
    try:
        with TeleopNodeProcess(domain, script, seconds=9.0) as node:
            seen_active, events = None, []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and node.process.is_alive():
                command = reader.poll()
                events += command.events
                if command.active and seen_active is None:
                    seen_active = command.action.copy()
                if seen_active is not None and not command.active and command.connected:
                    break  # let go
                time.sleep(0.01)
            assert seen_active is not None and seen_active[0] > 0.5
            assert OperatorEvent.SUCCESS in events
            assert reader.toggle_takeover()  # the console's TAKEOVER: the device drives, holding still
            held = reader.poll()
            assert held.active and held.takeover and np.allclose(held.action[:3], 0)
            node.process.join(15)
        time.sleep(STALE_S + 0.2)
        gone = reader.poll()
        assert not gone.connected and not gone.active and not gone.takeover
    finally:
        reader.close()


def test_the_ros_env_drops_malformed_observations_with_the_reason():
    from robot_rl.ros.robot_env import make_robot_env

    domain = fresh_domain_id()
    env = make_robot_env("PickCube-v0", obs_mode="pixels", domain_id=domain)
    probe = Probe(domain)
    try:
        bad_image = probe.publisher(Image, topics.camera_image("front"), qos.SENSOR)
        bad_pose = probe.publisher(PoseStamped, topics.EE_POSE, qos.SENSOR)
        pose = M.to_pose([0.5, 0.0, 0.2], np.eye(3), time.time())
        pose.pose.orientation.w = 5.0

        def both_rejected():
            bad_image.publish(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(10)))
            bad_pose.publish(pose)
            time.sleep(0.05)
            return len(env.rejected) == 2

        probe.wait_for(both_rejected, timeout=10.0, what="both rejections")
        assert "bytes" in env.rejected[topics.camera_image("front")]
        assert "unit quaternion" in env.rejected[topics.EE_POSE]
        assert env.received == {}  # nothing malformed became an observation
    finally:
        probe.close()
        env.close()


def test_lockstep_through_ros_reproduces_the_in_process_sim_step_for_step():
    import sim
    from robot_rl.ros.robot_env import make_robot_env

    domain = fresh_domain_id()
    with SimRobotProcess(domain, lockstep=True, cameras=[], seed=11):
        env = make_robot_env("PickCube-v0", lockstep=True, domain_id=domain)
        local = sim.make("PickCube-v0")
        try:
            obs, info = env.reset(seed=1234)  # the learner seeds the sim's scene
            assert info["robot"]["seed"] == 1234
            local_obs, _ = local.reset(seed=1234)  # the same scene
            policy, done, steps = ObsPickPolicy(), False, 0
            while not done:
                for key in ("proprio", "object"):
                    np.testing.assert_allclose(obs[key], local_obs[key], atol=1e-5, err_msg=f"{key} at step {steps}")
                action = policy.act(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
                local_obs, local_reward, local_terminated, _, _ = local.step(action)
                assert (reward, terminated) == (local_reward, local_terminated)
                done, steps = terminated or truncated, steps + 1
            assert terminated
        finally:
            env.close()
            local.close()


def test_the_teleop_estop_button_reaches_the_robot_directly():
    # The operator's e-stop goes from the teleop node to the robot's `estop` topic itself, not through
    # whoever reads the events (an actor busy in a reset would delay it). Pressed at 6 s (after discovery).
    from std_msgs.msg import String

    domain = fresh_domain_id()
    script = [(6.0, [], ["estop"]), (6.3, [], [])]
    with SimRobotProcess(domain), TeleopNodeProcess(domain, script, seconds=12.0):
        probe = Probe(domain)
        try:
            probe.listen(String, "status", qos.EVENT)
            probe.wait_for(lambda: probe.status().get("tick"), timeout=20, what="the sim robot's status")
            assert not probe.status()["estop"]
            probe.wait_for(lambda: probe.status().get("estop"), timeout=15, what="the robot's e-stop")
        finally:
            probe.close()
