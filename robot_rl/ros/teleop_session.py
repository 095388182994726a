"""Teleoperation without a policy: drive a ROS 2 robot (sim node or bridge) with a teleop device and
record every episode (all steps flagged as interventions: they are demonstrations).

    robot-rl teleop --profile franka_fr3 --device spacemouse --episodes-dir demos/ [--episodes 20]

Operator buttons: SUCCESS / FAILURE label and end the episode, RESET ends it unlabelled, PAUSE holds the
robot (no commands: the bridge's watchdog holds the pose) until pressed again. The episode's reward is
1 on the step the operator marks success; no reward node is needed (`success` topics are not read).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hardware.teleop import OperatorEvent, TeleopConfig, make_device
from robot_rl.recording import EpisodeRecorder
from robot_rl.rollout import episode_steps


def run_teleop(env, device, episodes_dir: str | Path, task: str, episodes: int | None = None,
               robot_profile: str | None = None, log=print) -> list[Path]:
    """Record up to `episodes` episodes (None: until the device is closed or Ctrl-C)."""
    recorder = EpisodeRecorder(episodes_dir, task=task, actor_id="teleop", robot_profile=robot_profile,
                               default_reward_source="human")
    saved: list[Path] = []
    events: set = set()
    paused = False
    sent = np.zeros(0, np.float32)

    def behaviour(obs) -> tuple[np.ndarray, bool]:
        """The device drives every step; PAUSE sends nothing until pressed again."""
        nonlocal events, paused, sent
        while True:
            command = device.poll()
            events = set(command.events)
            if OperatorEvent.ESTOP in events:  # the robot holds where it is; the episode ends below
                env.unwrapped.estop()
            if OperatorEvent.PAUSE in events:
                paused = not paused
            if not paused:
                sent = np.asarray(command.action, np.float32)
                return sent, True
            time.sleep(0.02)

    while episodes is None or len(saved) < episodes:
        obs, _ = env.reset()
        recorder.start(obs)
        label, path = None, None
        for step in episode_steps(env, behaviour, obs):
            reward, info, truncated = step.reward, step.info, step.truncated
            if OperatorEvent.SUCCESS in events or OperatorEvent.FAILURE in events:
                label = "success" if OperatorEvent.SUCCESS in events else "failure"
                reward = max(reward, float(label == "success"))
                info = {**info, "success": label == "success" or info.get("success", False)}
            if label is not None or OperatorEvent.RESET in events or OperatorEvent.ESTOP in events:
                truncated = truncated or not step.terminated
            info = {**info, "intervened": True}
            path = recorder.step(sent, reward, step.next_obs, step.terminated, truncated, info)
            if step.terminated or truncated:
                break
        if path is not None:
            saved.append(path)
            log(f"episode {len(saved)}: {step.index + 1} steps, success={info.get('success', False)}, "
                f"label={label} -> {path}")
    return saved


def main(profile_name: str, device_kind: str, episodes_dir: str, episodes: int | None,
         obs_mode: str, image_size: int, domain_id: int | None, action_history: int = 0) -> int:
    from hardware.robots import load_profile
    from robot_rl.ros.robot_env import RobotEnv, RobotEnvConfig

    profile = load_profile(profile_name)
    # No reward node needed: success comes from the operator's keys (a reward node's `success` is not read).
    env = RobotEnv(RobotEnvConfig.from_profile(profile, obs_mode=obs_mode, image_size=image_size,
                                               domain_id=domain_id, episode_steps=10_000, success_topic=False))
    if action_history:  # demos for a run with `action_history: N` observe the last N commands too
        from robot_rl.action_history import ActionHistory

        env = ActionHistory(env, action_history)
    device = make_device(device_kind, TeleopConfig.for_action_spec(profile.action))
    try:
        run_teleop(env, device, episodes_dir, profile.task, episodes, robot_profile=profile.name)
    except KeyboardInterrupt:
        pass
    finally:
        device.close()
        env.close()
    return 0
