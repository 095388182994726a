"""Real-robot bridges, end to end: a sim_robot_node renamed to speak franka_ros2's / UR Servo's topics
stands in for the arm; the bridge maps our contract onto it; RobotEnv drives a whole pick through it.
Three processes per test, real rclpy, own ROS_DOMAIN_ID."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hardware.robots import load_profile
from hardware.robots.profile import profile_from_dict
from tests.ros_helpers import BridgeProcess, ObsPickPolicy, RemappedSimProcess, fresh_domain_id

SAFETY = {"workspace_low": [0.25, -0.35, 0.0], "workspace_high": [0.75, 0.35, 0.45], "max_linear_speed": 0.6,
          "command_timeout_s": 0.5}
# The stand-in's reward and object state play a reward node and an object tracker on our namespace.
TASK_TOPICS = {"success": "/robot/success", "object_state": "/robot/object_state", "reward": "/robot/reward"}
FRANKA = {
    "name": "franka_test", "bridge": "franka", "home_position": [0.45, 0.0, 0.25], "bridge_hz": 50.0,
    "action": {"translation_scale": 0.03}, "safety": SAFETY,
    "topics": {"target_pose_out": "/cartesian_impedance_controller/equilibrium_pose",
               "ee_pose_in": "/franka_robot_state_broadcaster/current_pose",
               "ee_twist_in": "/franka_robot_state_broadcaster/desired_end_effector_twist",
               "ee_wrench_in": "/franka_robot_state_broadcaster/external_wrench_in_base_frame",
               "joint_states_in": "/joint_states", "gripper_width_in": "/arm_sim/gripper_width",
               "gripper_command_out": "/robot/gripper_opening"},
}
FRANKA_REMAPS = {"ee_pose": FRANKA["topics"]["ee_pose_in"], "ee_twist": FRANKA["topics"]["ee_twist_in"],
                 "ee_wrench": FRANKA["topics"]["ee_wrench_in"], "joint_states": "/joint_states",
                 "target_pose": FRANKA["topics"]["target_pose_out"], "gripper_command": "/robot/gripper_opening",
                 **TASK_TOPICS}
UR = {
    "name": "ur_test", "bridge": "ur", "home_position": [0.45, 0.0, 0.25], "bridge_hz": 50.0,
    "action": {"translation_scale": 0.03}, "safety": SAFETY,
    "topics": {"twist_out": "/servo_node/delta_twist_cmds", "ee_pose_in": "/tcp_pose_broadcaster/pose",
               "gripper_width_in": "/arm_sim/gripper_width", "gripper_command_out": "/robot/gripper_opening"},
}
UR_REMAPS = {"ee_pose": UR["topics"]["ee_pose_in"], "target_twist": UR["topics"]["twist_out"],
             "gripper_command": "/robot/gripper_opening", **TASK_TOPICS}


def test_shipped_profiles_load_and_bad_ones_name_the_key(tmp_path):
    for name in ("sim_panda", "franka_fr3", "ur5e"):
        profile = load_profile(name)
        assert profile.safety.contains(np.asarray(profile.home_position))
    with pytest.raises(ValueError, match="unknown key"):
        profile_from_dict({**FRANKA, "speed": 3})
    with pytest.raises(ValueError, match="home_position"):
        profile_from_dict({**FRANKA, "home_position": [2.0, 0.0, 0.2]})
    with pytest.raises(ValueError, match=r"safety.*max_linear_speed"):
        profile_from_dict({**FRANKA, "safety": {**SAFETY, "max_linear_speed": -1}})
    with pytest.raises(ValueError, match="not found"):
        load_profile("no_such_robot")


def _pick_through(profile: dict, remaps: dict) -> None:
    from robot_rl.ros.robot_env import make_robot_env

    domain = fresh_domain_id()
    with RemappedSimProcess(domain, remaps, cameras=[], control_hz=20.0, seed=1), BridgeProcess(domain, profile):
        env = make_robot_env("PickCube-v0", domain_id=domain, episode_steps=150, reset_timeout_s=30.0,
                             observation_timeout_s=5.0)
        try:
            obs, info = env.reset()  # the bridge homes the arm, then answers
            assert info["robot"]["reached"]
            assert np.linalg.norm(obs["proprio"][:3] - profile["home_position"]) < 0.02
            policy, done = ObsPickPolicy(), False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs))
                done = terminated or truncated
            assert terminated and reward == 1.0, f"no lift after {env.steps} steps"
            # E-stop through the bridge: the arm holds while commands keep coming.
            env.estop()
            deadline = time.monotonic() + 3
            while not env.robot_status.get("estop") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert env.robot_status["estop"]
            time.sleep(0.5)  # the arm was lifting: let it settle on the held pose
            obs, *_ = env.step(np.zeros(4, np.float32))
            held = obs["proprio"][:3]
            for _ in range(5):  # commands keep coming: ignored
                obs, *_ = env.step(np.array([0, 0, -1.0, -1.0], np.float32))
            assert np.linalg.norm(obs["proprio"][:3] - held) < 0.005
            assert env.clear_estop() == "e-stop cleared"
            # The watchdog: no command for longer than command_timeout_s -> the bridge holds.
            time.sleep(1.0)
            assert env.robot_status["watchdog_hold"]
        finally:
            env.close()


def test_franka_bridge_drives_a_pick_through_an_equilibrium_pose_controller():
    _pick_through(FRANKA, FRANKA_REMAPS)


def test_ur_bridge_drives_a_pick_through_servo_twists():
    _pick_through(UR, UR_REMAPS)
