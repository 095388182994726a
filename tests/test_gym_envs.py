"""Any gymnasium env trains through the same contract as the project's tasks: one defined here against
gymnasium's API alone (gym_fixture.py), and envs of installed suites the project does not ship
(gymnasium's MuJoCo InvertedPendulum, gymnasium-robotics' PointMaze)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.envs.gym_env import make_gym_env
from robot_rl.train import TrainConfig, Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}
SMALL_AGENT = {"hidden_dims": [64, 64], "batch_size": 64, "utd": 2}


@pytest.fixture(autouse=True)
def _fixture_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def test_dict_observations_bounded_actions_and_success_are_adapted():
    env = make_gym_env("gym_fixture:PointReach-v0", {"image": True})
    obs, info = env.reset(seed=3)
    assert set(obs) == {"position", "goal", "images"} and set(obs["images"]) == {"top_view"}
    assert obs["position"].dtype == np.float32 and obs["images"]["top_view"].dtype == np.uint8
    assert env.action_space.low.tolist() == [-1, -1] and env.action_space.high.tolist() == [1, 1]
    # [-1, 1] maps onto the env's own [0, 2]: 0 is its "stand still".
    np.testing.assert_allclose(env.to_env_action(np.zeros(2)), [1.0, 1.0])
    np.testing.assert_allclose(env.from_env_action(env.to_env_action(np.array([0.3, -0.7]))), [0.3, -0.7], atol=1e-6)
    start = obs["position"].copy()
    obs, reward, terminated, truncated, info = env.step(np.zeros(2))
    np.testing.assert_allclose(obs["position"], start)
    np.testing.assert_allclose(info["executed_action"], [0.0, 0.0])
    assert info["success"] is False and "distance" in info  # the env's own info is kept
    obs["goal"][:] = obs["position"]  # not the env's state: a copy
    env.env.unwrapped.goal = env.env.unwrapped.position.copy()
    _, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert info["success"] and terminated and not truncated and reward == 1.0


def test_truncation_is_kept_apart_from_termination_and_success_keys_are_checked():
    env = make_gym_env("gym_fixture:PointReach-v0", {"tolerance": 1e-9})
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[2:4] for _ in range(25)]
    assert flags[-1] == (False, True) and not any(t for t, _ in flags)  # the time limit truncates
    strict = make_gym_env("gym_fixture:PointReach-v0", success_key="reached")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="success_key 'reached'"):
        strict.step(np.zeros(2))


@pytest.mark.parametrize("env_id, kwargs, match", [
    ("Nope-v0", {}, "env.id 'Nope-v0'"),
    ("no_such_module:Thing-v0", {}, "no_such_module"),
    ("gym_fixture:PointReach-v0", {"colour": "red"}, "env.kwargs"),
    ("CartPole-v1", {}, "not a 1-D Box"),
])
def test_envs_that_do_not_fit_are_clear_errors(env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_gym_env(env_id, kwargs)


def test_project_options_on_a_gym_env_are_refused(tmp_path):
    with pytest.raises(ValueError, match="env.kwargs"):
        Trainer(TrainConfig.from_dict({"env": {"id": "gym_fixture:PointReach-v0"}, "obs_mode": "pixels",
                                       "num_demos": 0, "out_dir": str(tmp_path)}))
    with pytest.raises(ValueError, match="no scripted expert"):
        Trainer(TrainConfig.from_dict({"env": {"id": "gym_fixture:PointReach-v0"}, "out_dir": str(tmp_path / "b")}))


def test_robot_rl_train_learns_a_gym_env_it_does_not_ship(tmp_path):
    """`robot-rl train --set env.id=module:Env-v0` with demos from the user's scripted policy: SAC from
    5 demos reaches the goal in most evaluation episodes after 2,000 env steps (measured: 80-90%)."""
    out = tmp_path / "run"
    sets = ["env.id=gym_fixture:PointReach-v0", "demo_policy=gym_fixture:expert", "num_demos=5",
            "total_env_steps=2000", "learning_starts=100", "eval_every=1000", "eval_episodes=20",
            "progress=false", "tensorboard=false", "agent.hidden_dims=[64,64]", "agent.batch_size=64", "agent.utd=4"]
    done = subprocess.run([sys.executable, "-m", "robot_rl.cli", "train", "--out", str(out), "--set", *sets],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["env_steps"] == 2000 and summary["final_success_rate"] >= 0.6
    assert json.loads((out / "config.json").read_text())["env"]["id"] == "gym_fixture:PointReach-v0"
    from robot_rl.evaluate_run import evaluate_checkpoint

    assert evaluate_checkpoint(out, episodes=5)["episodes"] == 5  # and the run evaluates as any other


def test_learner_and_actor_processes_train_a_gym_env(tmp_path):
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    common = ["--data-port", str(ports[0]), "--weights-port", str(ports[1]), "--set",
              "env.id=gym_fixture:PointReach-v0", "demo_policy=gym_fixture:expert", "num_demos=2",
              "total_env_steps=300", "learning_starts=50", "eval_every=300", "eval_episodes=2", "progress=false",
              "tensorboard=false", "agent.hidden_dims=[32,32]", "agent.batch_size=32", "agent.utd=1"]
    learner = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "learner", "--out", str(tmp_path / "run"),
                                *common], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    actor = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "actor", "--actor-id", "gym0", "--spool",
                              str(tmp_path / "spool"), "--episodes-dir", str(tmp_path / "episodes"), *common],
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = learner.communicate(timeout=300)
        assert learner.returncode == 0, err[-3000:]
        actor_out, actor_err = actor.communicate(timeout=120)
        assert actor.returncode == 0, actor_err[-3000:]
    finally:
        for proc in (learner, actor):
            if proc.poll() is None:
                proc.kill()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["env_steps"] >= 300 and summary["updates"] > 0
    from robot_rl.episodes import iter_episodes

    kept = [episode for _, episode in iter_episodes(tmp_path / "episodes")]
    assert kept and all(e.task == "gym_fixture:PointReach-v0" for e in kept)
    assert set(kept[0].observations) == {"position", "goal"}


def test_an_installed_mujoco_suite_env_with_its_own_action_bounds_learns(tmp_path):
    """gymnasium's InvertedPendulum-v5 (actions in [-3, 3], falling terminates, 1,000 steps truncate): no
    demos, SAC from scratch. The untrained policy balances a handful of steps; after 1,500 env steps the
    learned one balances many times longer (measured: 88 of at most 200 steps, seed 0)."""
    from robot_rl.rollout import evaluate

    cfg = TrainConfig.from_dict({"env": {"id": "InvertedPendulum-v5", "kwargs": {"max_episode_steps": 200}},
                                 "num_demos": 0, "total_env_steps": 1500, "learning_starts": 200,
                                 "eval_every": 1500, "eval_episodes": 3, "out_dir": str(tmp_path),
                                 "progress": False, "tensorboard": False, "agent": SMALL_AGENT})
    trainer = Trainer(cfg)
    assert trainer.env.unwrapped.env.unwrapped.action_space.high.tolist() == [3.0]
    untrained = evaluate(trainer.agent, trainer.eval_env, 3, seed=2_000_000_000)["mean_length"]
    result = trainer.run()
    assert result["evals"][-1]["mean_length"] >= max(40, 4 * untrained)
    assert trainer.online.sample(256, np.random.default_rng(0), 1).discount.min() == 0.0  # falls terminate


def test_a_gymnasium_robotics_goal_env_trains_through_the_learner(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    cfg = TrainConfig.from_dict({"env": {"id": "gymnasium_robotics:PointMaze_UMaze-v3",
                                         "kwargs": {"continuing_task": False, "max_episode_steps": 50}},
                                 "num_demos": 0, "total_env_steps": 150, "learning_starts": 50, "eval_every": 150,
                                 "eval_episodes": 2, "out_dir": str(tmp_path), "progress": False,
                                 "tensorboard": False, "agent": {"name": "crossq", "batch_size": 64,
                                                                 "critic_hidden_dims": [64, 64],
                                                                 "actor_hidden_dims": [64, 64]}})
    trainer = Trainer(cfg)
    assert set(trainer.obs_spec.shapes) == {"observation", "achieved_goal", "desired_goal"}
    result = trainer.run()
    assert result["env_steps"] == 150 and len(result["evals"]) == 1
    assert isinstance(trainer.online.obs_spec, type(trainer.obs_spec))
