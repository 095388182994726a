"""`robot-rl train` end to end: demos, updates per env step, checkpoints that resume exactly, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.replay import ObsSpec, ReplayBuffer
from robot_rl.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parent.parent
TINY_AGENT = {"hidden_dims": (32, 32), "batch_size": 32, "utd": 2}


def _tiny(out, **overrides) -> TrainConfig:
    values = dict(total_env_steps=300, num_demos=2, learning_starts=50, eval_every=150, eval_episodes=2,
                  checkpoint_every=100, out_dir=str(out), progress=False, tensorboard=False, agent=TINY_AGENT)
    values.update(overrides)
    return TrainConfig.from_dict(values)


def test_run_writes_its_artifacts_and_keeps_the_update_ratio(tmp_path):
    result = Trainer(_tiny(tmp_path)).run()
    assert result["env_steps"] == 300
    # UTD is enforced: utd critic updates for every env step once learning has started.
    assert result["updates"] == 2 * (300 - 50 + 1)
    for name in ("config.json", "checkpoint.pt", "online_buffer.npz", "demo_buffer.npz", "eval.jsonl",
                 "learning_curve.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [e["env_step"] for e in evals] == [150, 300]
    assert json.loads((tmp_path / "config.json").read_text())["agent"]["utd"] == 2
    demos = ReplayBuffer.load(tmp_path / "demo_buffer.npz")
    assert demos.transitions_written > 10 and demos.sample(8, np.random.default_rng(0)).reward.max() == 1.0


class _Crash(Exception):
    pass


def test_crash_then_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    straight = Trainer(_tiny(tmp_path / "a"))
    straight.run()

    crashed = Trainer(_tiny(tmp_path / "b"))
    real_step = crashed.env.step
    calls = {"n": 0}

    def step_then_crash(action):
        calls["n"] += 1
        if calls["n"] > 260:
            raise _Crash()
        return real_step(action)

    monkeypatch.setattr(crashed.env, "step", step_then_crash)
    with pytest.raises(_Crash):
        crashed.run()
    resumed = Trainer(_tiny(tmp_path / "b"), resume=True)
    assert 0 < resumed.env_steps < 260  # from the last checkpoint, at an episode boundary
    resumed.run()
    for a, b in zip(straight.agent.actor.parameters(), resumed.agent.actor.parameters()):
        assert torch.equal(a, b)
    assert straight.agent.updates == resumed.agent.updates
    assert float(straight.agent.temperature) == float(resumed.agent.temperature)
    assert (tmp_path / "a" / "eval.jsonl").read_text().count("\n") == \
        (tmp_path / "b" / "eval.jsonl").read_text().count("\n")


@pytest.mark.parametrize("crash_at", ["before_checkpoint", "before_rename"])
def test_a_crash_mid_save_leaves_a_resumable_run(tmp_path, monkeypatch, crash_at):
    """A kill -9 can land between writing the buffers and the checkpoint that counts them, or between
    that checkpoint and renaming the staged buffers into place: either way the run resumes."""
    import robot_rl.run_dir as run_dir_module

    trainer = Trainer(_tiny(tmp_path, total_env_steps=10**6))
    trainer._start = 0.0  # as run() sets it
    rng = np.random.default_rng(0)

    def collect(steps):  # one episode of random actions, cut at `steps`
        obs, _ = trainer.env.reset(seed=trainer.env_steps)
        trainer.online.start_episode(obs)
        for t in range(steps):
            obs, reward, terminated, truncated, info = trainer.env.step(rng.uniform(-1, 1, trainer.action_dim))
            trainer.online.add(info["executed_action"], reward, obs, terminated, truncated or t == steps - 1)
            trainer.env_steps += 1
            if terminated:
                break

    collect(60)
    trainer.save()
    saved_steps = trainer.env_steps
    collect(40)
    real_write, real_replace = run_dir_module.atomic_write, Path.replace

    def crash_on_checkpoint(path, write):
        if Path(path).name == "checkpoint.pt":
            raise _Crash()
        real_write(path, write)

    def crash_on_rename(self, target):
        if self.name.endswith(".next.npz"):
            raise _Crash()
        return real_replace(self, target)

    if crash_at == "before_checkpoint":
        monkeypatch.setattr(run_dir_module, "atomic_write", crash_on_checkpoint)
    else:
        monkeypatch.setattr(Path, "replace", crash_on_rename)
    with pytest.raises(_Crash):
        trainer.save()
    monkeypatch.undo()
    assert (tmp_path / "online_buffer.next.npz").exists()
    resumed = Trainer(_tiny(tmp_path, total_env_steps=10**6), resume=True)
    expected = saved_steps if crash_at == "before_checkpoint" else trainer.env_steps
    assert resumed.env_steps == expected
    assert resumed.online.transitions_written == trainer.online.transitions_written - (trainer.env_steps - expected)
    assert not (tmp_path / "online_buffer.next.npz").exists()


def test_demo_file_of_another_task_is_refused(tmp_path):
    buf = ReplayBuffer(10, ObsSpec({"proprio": (13,), "object": (13,)}, {"proprio": "float32", "object": "float32"}), 3)
    buf.save(tmp_path / "peg_demos.npz")
    with pytest.raises(ValueError, match="do not fit env PickCube-v0"):
        Trainer(_tiny(tmp_path / "run", demo_path=str(tmp_path / "peg_demos.npz")))


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    Trainer(_tiny(tmp_path, total_env_steps=120, checkpoint_every=50)).run()
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint.pt"):
        Trainer(_tiny(tmp_path), resume=True)


@pytest.mark.parametrize("values, key", [({"total_env_steps": 0}, "total_env_steps"),
                                         ({"obs_mode": "depth"}, "obs_mode"),
                                         ({"agent": {"utd": "many"}}, "agent.utd"),
                                         ({"demo_ratio": 1.0}, "demo_ratio"),
                                         ({"warm_start_critics": False}, "warm_start_critics"),
                                         ({"env": {"id": "Nope-v0"}}, "Nope-v0"),
                                         ({"agent": {"name": "nope"}}, "agent.name"),
                                         ({"task": "PickCube-v0"}, "now env.id"),
                                         ({"algorithm": "bc"}, "now agent.name")])
def test_bad_config_names_the_key(tmp_path, values, key):
    with pytest.raises(ValueError, match=key):
        Trainer(TrainConfig.from_dict({"out_dir": str(tmp_path), **values}))


def test_cli_train_and_resume(tmp_path):
    out = tmp_path / "run"
    common = [sys.executable, "-m", "robot_rl.cli", "train", "--out", str(out)]
    sets = ["total_env_steps=120", "num_demos=1", "learning_starts=40", "eval_every=60", "eval_episodes=1",
            "checkpoint_every=50", "progress=false", "tensorboard=false", "agent.hidden_dims=[16,16]",
            "agent.batch_size=16", "agent.utd=1"]
    done = subprocess.run(common + ["--set", *sets], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["env_steps"] == 120 and summary["updates"] == 81
    more = subprocess.run(common + ["--resume", "--set", "total_env_steps=180"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout.strip().splitlines()[-1])["env_steps"] == 180
    bad = subprocess.run(common + ["--set", "agent.nope=1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 2 and "agent.nope" in bad.stderr and "Traceback" not in bad.stderr


def test_a_finished_run_is_not_overwritten(tmp_path):
    Trainer(_tiny(tmp_path, total_env_steps=60, learning_starts=20, eval_every=60)).run()
    with pytest.raises(ValueError, match="--resume"):
        Trainer(_tiny(tmp_path))


def test_pixel_training_runs_end_to_end(tmp_path):
    cfg = _tiny(tmp_path, obs_mode="pixels", image_size=32, cameras=("front", "wrist"), total_env_steps=80,
                learning_starts=40, eval_every=80, eval_episodes=1,
                agent={"hidden_dims": (32, 32), "batch_size": 16, "utd": 1, "feature_dim": 8, "precision": "bf16"})
    trainer = Trainer(cfg)
    result = trainer.run()
    assert result["updates"] == 41
    assert trainer.online.obs_spec.dtypes["images/front"] == "uint8"
    assert trainer.online.obs_spec.shapes["images/wrist"] == (32, 32, 3)


def test_discrete_gripper_run_uses_toggle_mode_and_resumes(tmp_path):
    agent = {**TINY_AGENT, "grasp_critic": True}
    trainer = Trainer(_tiny(tmp_path, total_env_steps=120, learning_starts=40, eval_every=120,
                            checkpoint_every=50, agent=agent))
    assert trainer.env.config.action.gripper_mode == "toggle"
    trainer.run()
    gripper = trainer.online.sample(64, np.random.default_rng(0)).action[:, -1]
    assert set(np.unique(gripper)) <= {-1.0, 0.0, 1.0}
    demos = trainer.demos.sample(64, np.random.default_rng(0))
    assert demos.gripper_toggled.any()  # the expert closes the gripper once per demo
    resumed = Trainer(_tiny(tmp_path, total_env_steps=120, agent=agent), resume=True)
    for a, b in zip(trainer.agent.grasp.parameters(), resumed.agent.grasp.parameters()):
        assert torch.equal(a, b)


def test_discrete_gripper_on_a_task_without_gripper_is_refused(tmp_path):
    with pytest.raises(ValueError, match="grasp_critic needs a task with a gripper"):
        Trainer(_tiny(tmp_path, env={"id": "PegInsertion-v0"}, agent={**TINY_AGENT, "grasp_critic": True}))


def test_behaviour_cloning_baseline_imitates_the_demos(tmp_path):
    cfg = _tiny(tmp_path, num_demos=5, eval_episodes=3,
                agent={"name": "bc", "updates": 400, "batch_size": 64, "hidden_dims": (64, 64)})
    trainer = Trainer(cfg)
    batch = trainer.demos.sample(256, np.random.default_rng(0))

    def demo_error():
        predicted = np.stack([trainer.agent.act({k: v[i] for k, v in batch.obs.items()}) for i in range(256)])
        return float(np.mean((predicted - np.clip(batch.action, -1, 1)) ** 2))

    before = demo_error()
    result = trainer.run()
    assert result["updates"] == 400 and len(result["evals"]) == 5
    assert (tmp_path / "learning_curve.png").exists()
    assert demo_error() < 0.3 * before


def test_bc_needs_demos(tmp_path):
    with pytest.raises(ValueError, match="num_demos"):
        TrainConfig.from_dict({"agent": {"name": "bc"}, "num_demos": 0, "out_dir": str(tmp_path)})


def test_asymmetric_pixel_run(tmp_path):
    cfg = _tiny(tmp_path, obs_mode="pixels", image_size=32, cameras=("front",), total_env_steps=60,
                learning_starts=30, eval_every=60, eval_episodes=1,
                agent={"hidden_dims": (32, 32), "batch_size": 16, "utd": 2, "feature_dim": 8, "asymmetric": True})
    trainer = Trainer(cfg)
    assert "privileged" in trainer.online.obs_spec.shapes
    assert trainer.run()["updates"] == 2 * 31


@pytest.mark.parametrize("algorithm", ["iql", "calql"])
def test_offline_pretraining_then_warm_started_online_run(tmp_path, algorithm):
    offline = _tiny(tmp_path / algorithm, num_demos=3, eval_episodes=1,
                    agent={**TINY_AGENT, "name": algorithm, "updates": 50})
    trainer = Trainer(offline)
    result = trainer.run()
    assert result["updates"] == 50 and len(result["evals"]) == 5
    actor = [p.clone() for p in trainer.agent.sac.actor.parameters()]
    # WSRL: online SAC from the pre-trained actor and critics, without the offline data; 20 env steps
    # of warm-up, then 20 with critic-only updates, then full updates.
    online = _tiny(tmp_path / "online", num_demos=0, total_env_steps=60, learning_starts=20,
                   critic_warmup_steps=20, eval_every=60, eval_episodes=1, anchor_weight=1.0, anchor_steps=10,
                   warm_start=str(tmp_path / algorithm / "checkpoint.pt"))
    fine_tune = Trainer(online)
    assert fine_tune.demos is None  # batches come from online data only
    for a, b in zip(actor, fine_tune.agent.actor.parameters()):
        assert torch.equal(a, b)
    steps = []
    original = fine_tune.agent.update_actor
    fine_tune.agent.update_actor = lambda *a, **k: steps.append(fine_tune.env_steps) or original(*a, **k)
    fine_tune.run()
    assert steps == list(range(40, 61))  # the actor moves only after 20 critic-only update calls
    assert fine_tune.agent.anchor_weight == 0.0  # decayed over anchor_steps
    assert not all(torch.equal(a, b) for a, b in zip(actor, fine_tune.agent.actor.parameters()))
    # A resumed fine-tuning run gets its frozen pre-trained anchor back.
    resumed = Trainer(online, resume=True)
    for a, b in zip(actor, resumed.agent.anchor.parameters()):
        assert torch.equal(a, b)


def test_warm_start_from_a_mismatched_checkpoint_is_refused(tmp_path):
    Trainer(_tiny(tmp_path / "peg", env={"id": "PegInsertion-v0"}, num_demos=1,
                  agent={"name": "bc", "updates": 5, "batch_size": 8})).run()
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(_tiny(tmp_path / "pick", warm_start=str(tmp_path / "peg" / "checkpoint.pt")))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    from robot_rl.config import load_yaml

    values = load_yaml(path)
    if "anchor_weight" in values:  # fine-tuning recipes: the user names the pre-trained run with --set
        with pytest.raises(ValueError, match="needs warm_start"):
            TrainConfig.from_dict(values)
        values["warm_start"] = "runs/pretrained/checkpoint.pt"
    cfg = TrainConfig.from_dict(values)
    assert cfg.env.id in ("PickCube-v0", "PegInsertion-v0")
    if cfg.robot.enabled:  # a robot recipe builds its robot env config too
        from robot_rl.ros.robot_env import RobotEnvConfig

        RobotEnvConfig.for_task(cfg.env.id, obs_mode=cfg.obs_mode,
                                privileged=cfg.obs_mode == "pixels" and cfg.agent.asymmetric)
