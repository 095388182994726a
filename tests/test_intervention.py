"""Interventions: the simulated human's takeover rules, intervention segments in the demo buffer, and
the training loop with a human in it."""

import json

import numpy as np
import pytest

import sim
from robot_rl.intervention import HumanConfig, InterventionSegments, SimulatedHuman
from robot_rl.replay import ObsSpec, ReplayBuffer
from robot_rl.train import TrainConfig, Trainer
from sim.experts import expert_for


def _drive(env, human, policy, steps):
    """Run `steps` steps; return per step whether the human drove."""
    drove = []
    for _ in range(steps):
        action = policy()
        human_action = human.act(action)
        drove.append(human_action is not None)
        _, _, terminated, truncated, _ = env.step(action if human_action is None else human_action)
        if terminated or truncated:
            break
    return drove


def test_the_human_takes_over_a_drifting_policy_after_its_reaction_delay_within_budget():
    env = sim.make("PickCube-v0")
    env.reset(seed=0)
    cfg = HumanConfig(enabled=True, reaction_steps=3, takeover_steps=5, budget=2, noise_std=0.0)
    human = SimulatedHuman(env, "PickCube-v0", cfg)
    away = np.array([0.0, 0.0, 1.0, -1.0], np.float32)  # up and closed: never what the expert does first
    drove = _drive(env, human, lambda: away, 40)
    # 3 drifting steps, 5 steps of takeover, 3 drifting again, 5 more, then the budget is spent.
    assert drove[:16] == [False] * 3 + [True] * 5 + [False] * 3 + [True] * 5
    assert not any(drove[16:]) and human.takeovers == 2
    env.close()


def test_the_human_leaves_a_policy_that_acts_like_the_expert_alone():
    env = sim.make("PickCube-v0")
    env.reset(seed=1)
    human = SimulatedHuman(env, "PickCube-v0", HumanConfig(enabled=True, noise_std=0.0))
    expert = expert_for("PickCube-v0", env)
    drove = _drive(env, human, lambda: expert.act(), 100)
    assert not any(drove) and human.takeovers == 0
    env.close()


def test_expert_sync_picks_up_an_episode_mid_way():
    env = sim.make("PickCube-v0")
    env.reset(seed=2)
    expert = expert_for("PickCube-v0", env)
    for _ in range(100):  # until the expert holds the cube and lifts
        _, _, terminated, _, _ = env.step(expert.act())
        if expert.phase == 3 or terminated:
            break
    fresh = expert_for("PickCube-v0", env)
    fresh.sync()
    assert fresh.phase == 3  # it lifts, it does not let go of the cube to start over
    env.close()


def test_intervention_segments_bootstrap_where_the_human_lets_go():
    spec = ObsSpec({"proprio": (1,)}, {"proprio": "float32"})
    buffer = ReplayBuffer(100, spec, 1)
    segments = InterventionSegments(buffer)
    obs = [{"proprio": np.array([t], np.float32)} for t in range(8)]
    flags = [False, True, True, False, True, True, True]  # two segments, the second ends the episode
    for t, intervened in enumerate(flags):
        last = t == len(flags) - 1
        segments.step(obs[t], [float(t)], 0.0, obs[t + 1], terminated=last, truncated=False,
                      intervened=intervened)
    assert buffer.transitions_written == 5 and buffer.frames_written == 7  # 2+1 and 3+1 frames
    batch = buffer.sample(64, np.random.default_rng(0))
    by_step = {int(a[0]): (float(d), bool(i)) for a, d, i in zip(batch.action, batch.discount, batch.intervened)}
    assert by_step[2][0] == 1.0  # the human let go after step 2: truncated, so it still bootstraps
    assert by_step[6][0] == 0.0  # the episode terminated on step 6
    assert all(i for _, i in by_step.values()) and set(by_step) == {1, 2, 4, 5, 6}


def test_training_with_the_simulated_human_logs_and_stores_interventions(tmp_path):
    cfg = TrainConfig.from_dict({"num_demos": 0, "total_env_steps": 300, "learning_starts": 50,
                                 "eval_every": 300, "eval_episodes": 1, "checkpoint_every": 100,
                                 "out_dir": str(tmp_path), "progress": False, "tensorboard": False,
                                 "agent": {"hidden_dims": (32, 32), "batch_size": 32, "utd": 1},
                                 "human": {"enabled": True}})
    trainer = Trainer(cfg)
    assert trainer.demos is not None and len(trainer.demos) == 0  # interventions will fill it
    trainer.run()
    log = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(log) == trainer.episodes and sum(e["takeovers"] for e in log) > 0
    intervened_steps = round(sum(e["intervention_rate"] * e["length"] for e in log))
    assert trainer.demos.transitions_written == intervened_steps  # every intervened step, once
    online = trainer.online.sample(1000, np.random.default_rng(0))
    assert online.intervened.any() and not online.intervened.all()
    resumed = Trainer(cfg, resume=True)
    assert resumed.demos.transitions_written == trainer.demos.transitions_written


def test_human_config_errors_name_the_field():
    with pytest.raises(ValueError, match="reaction_steps"):
        HumanConfig(reaction_steps=0)
    with pytest.raises(ValueError, match="HumanConfig.budget"):
        TrainConfig.from_dict({"human": {"budget": -1}})


def test_the_policy_step_before_a_takeover_is_penalised(tmp_path):
    cfg = TrainConfig.from_dict({"num_demos": 0, "total_env_steps": 100, "learning_starts": 1000,
                                 "eval_every": 100, "eval_episodes": 1, "out_dir": str(tmp_path),
                                 "progress": False, "tensorboard": False, "agent": {"hidden_dims": (32, 32)},
                                 "human": {"enabled": True, "takeover_penalty": 0.5}})
    trainer = Trainer(cfg)
    trainer.run()
    n = trainer.online.transitions_written
    rewards = trainer.online._reward[:n]
    intervened = trainer.online._intervened[:n]
    starts = [t for t in range(1, n) if intervened[t] and not intervened[t - 1]]
    assert starts and all(rewards[t - 1] == -0.5 for t in starts)  # sparse reward 0 before success
    others = [t for t in range(n) if t + 1 not in starts]
    assert all(rewards[t] >= 0 for t in others)


def test_add_to_last_reward():
    buffer = ReplayBuffer(10, ObsSpec({"proprio": (1,)}, {"proprio": "float32"}), 1)
    with pytest.raises(RuntimeError, match="empty"):
        buffer.add_to_last_reward(-1.0)
    buffer.start_episode({"proprio": np.zeros(1, np.float32)})
    buffer.add([0.0], 1.0, {"proprio": np.ones(1, np.float32)}, False, False)
    buffer.add_to_last_reward(-0.25)
    assert buffer.sample(1, np.random.default_rng(0)).reward[0] == 0.75
