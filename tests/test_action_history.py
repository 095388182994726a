"""The last commands sent, as an observation: the same in the simulator and on a ROS 2 robot, recorded as
sent (not as the policy proposed, nor as a latency-delayed command acts), carried into runs, evaluation
and distillation."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from robot_rl.action_history import KEY, ActionHistory
from tests.ros_helpers import SimRobotProcess, fresh_domain_id

SENT = [np.array([0.5, 0.0, 0.0, 1.0]), np.array([0.0, -0.5, 0.0, 1.0]), np.array([0.0, 0.0, 2.0, -1.0])]


def _step_through(env) -> list[dict]:
    obs, _ = env.reset(seed=3)
    seen = [obs]
    for action in SENT:
        seen.append(env.step(action)[0])
    return seen


def test_the_sim_observes_its_last_commands_as_sent_even_when_they_act_late():
    env = ActionHistory(sim.make("PickCube-v0", randomization={"enabled": True, "action_latency_steps": (2, 2)}), 2)
    assert env.observation_space[KEY].shape == (8,)
    seen = _step_through(env)
    np.testing.assert_array_equal(seen[0][KEY], np.zeros(8, np.float32))  # nothing sent yet
    np.testing.assert_array_equal(seen[1][KEY], np.r_[np.zeros(4), SENT[0]].astype(np.float32))
    clipped = np.clip(SENT[2], -1, 1)  # what the env accepted, not what the policy proposed
    np.testing.assert_array_equal(seen[3][KEY], np.r_[SENT[1], clipped].astype(np.float32))
    assert env.steps == 3
    obs, _ = env.reset(seed=4)
    assert not obs[KEY].any()  # a new episode starts with an empty history
    with pytest.raises(ValueError, match="action_history"):
        ActionHistory(sim.make("PickCube-v0"), 0)
    with pytest.raises(ValueError, match="once"):
        ActionHistory(env, 1)


def test_a_ros_robot_observes_the_same_history_and_a_run_with_one_deploys_there(tmp_path):
    from robot_rl.train import TrainConfig, Trainer, evaluate_checkpoint, make_env

    out = tmp_path / "run"
    small = {"tensorboard": False, "progress": False, "eval_episodes": 1, "agent": {"batch_size": 16, "utd": 1}}
    Trainer(TrainConfig.from_dict({**small, "out_dir": str(out), "total_env_steps": 50, "num_demos": 1,
                                   "eval_every": 50, "action_history": 3})).run()
    domain = fresh_domain_id()
    robot = {"enabled": True, "domain_id": domain}
    with SimRobotProcess(domain, lockstep=True, cameras=[], standin="pick_cube"):
        env = make_env(TrainConfig.from_dict({"action_history": 2, "robot": robot}))
        try:
            seen = _step_through(env)
        finally:
            env.close()
        result = evaluate_checkpoint(out, {"robot": robot}, episodes=1)
    np.testing.assert_array_equal(seen[0][KEY], np.zeros(8, np.float32))
    np.testing.assert_array_equal(seen[3][KEY], np.r_[SENT[1], np.clip(SENT[2], -1, 1)].astype(np.float32))
    assert result["robot"] is True and result["episodes"] == 1
    with pytest.raises(ValueError, match="action_history"):
        TrainConfig.from_dict({"action_history": -1})


def test_a_distillation_student_must_observe_what_its_teacher_did(tmp_path):
    from robot_rl.train import TrainConfig, Trainer

    small = {"tensorboard": False, "progress": False, "eval_episodes": 1, "agent": {"batch_size": 16, "utd": 1}}
    teacher = tmp_path / "teacher"
    Trainer(TrainConfig.from_dict({**small, "out_dir": str(teacher), "total_env_steps": 40, "num_demos": 1,
                                   "eval_every": 40, "action_history": 2})).run()
    student = {**small, "obs_mode": "pixels", "image_size": 32, "num_demos": 0,
               "total_env_steps": 20, "eval_every": 20, "learning_starts": 16,
               "agent": {**small["agent"], "name": "distill", "teacher": str(teacher), "handover_steps": 10}}
    with pytest.raises(ValueError, match="action_history=2"):
        Trainer(TrainConfig.from_dict({**student, "out_dir": str(tmp_path / "without")})).run()
    Trainer(TrainConfig.from_dict({**student, "out_dir": str(tmp_path / "with"), "action_history": 2})).run()
    assert (tmp_path / "with" / "checkpoint.pt").exists()


def test_teleop_demos_record_the_history_and_train_a_run_that_observes_it(tmp_path):
    """`robot-rl teleop --action-history N` records what a run with `action_history: N` observes; its
    episode directory is that run's `demo_path`, and a run that observes no history says why it refuses it."""
    from controllers.actions import ActionSpec
    from hardware.teleop import ScriptedDevice, TeleopConfig
    from robot_rl.episodes import iter_episodes
    from robot_rl.ros.teleop_session import run_teleop
    from robot_rl.train import TrainConfig, Trainer

    ticks = iter(np.arange(0.0, 100.0, 0.1))  # each poll is 0.1 s later
    script = [(0.0, (0.5, 0.0, 0.0), ()), (0.25, (0.0, -0.5, 0.0), ()), (0.45, (), ("success",)),
              (0.55, (), ()), (0.75, (0.0, 0.0, 0.5), ()), (0.95, (), ("success",))]
    device = ScriptedDevice(script, TeleopConfig.for_action_spec(ActionSpec()), clock=lambda: next(ticks))
    env = ActionHistory(sim.make("PickCube-v0"), 2)
    saved = run_teleop(env, device, tmp_path / "demos", "PickCube-v0", episodes=2, log=lambda _: None)
    env.close()
    assert len(saved) == 2
    episodes = [episode for _, episode in iter_episodes(tmp_path / "demos")]
    first = episodes[0]
    assert first.success and first.intervened.all() and first.observations[KEY].shape == (first.length + 1, 8)
    # Every frame's history is the two commands sent before it, oldest first (zeros before the first).
    sent = np.vstack([np.zeros((2, 4), np.float32), first.action])
    for t in range(first.length + 1):
        np.testing.assert_array_equal(first.observations[KEY][t], sent[t:t + 2].reshape(-1))

    small = {"tensorboard": False, "progress": False, "eval_episodes": 1, "total_env_steps": 20, "eval_every": 20,
             "learning_starts": 10, "agent": {"batch_size": 8, "utd": 1}, "demo_path": str(tmp_path / "demos")}
    result = Trainer(TrainConfig.from_dict({**small, "out_dir": str(tmp_path / "run"), "action_history": 2})).run()
    assert result["env_steps"] == 20
    from robot_rl.replay import ReplayBuffer

    demos = ReplayBuffer.load(tmp_path / "run" / "demo_buffer.npz")  # both teleop episodes, every step
    assert demos.transitions_written == sum(e.length for e in episodes)
    with pytest.raises(ValueError, match="robot-rl teleop --action-history 0"):
        Trainer(TrainConfig.from_dict({**small, "out_dir": str(tmp_path / "plain")})).run()
