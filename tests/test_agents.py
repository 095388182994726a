"""The agent contract, for every registered agent: acts in [-1, 1], learns from batches, resumes
exactly from its state_dict, and ships exactly what its policy needs. CrossQ's own properties. And an
agent defined here, registered without touching the training loop or the learner, trains end to end."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from robot_rl.agents import AGENTS, Agent, AgentConfig, agent_config, make_agent, register_agent
from robot_rl.replay import Batch, ObsSpec
from robot_rl.train import TrainConfig, Trainer

SPEC = ObsSpec({"proprio": (5,), "object": (3,)}, {"proprio": "float32", "object": "float32"})
SMALL = {"sac": {"hidden_dims": [32, 32]}, "crossq": {"critic_hidden_dims": [32, 32], "actor_hidden_dims": [32, 32]},
         "bc": {"hidden_dims": [32, 32]}, "iql": {"hidden_dims": [32, 32]}, "calql": {"hidden_dims": [32, 32]}}


def _batch(n=32, seed=0) -> Batch:
    rng = np.random.default_rng(seed)
    obs = {k: rng.normal(size=(n, *s)).astype(np.float32) for k, s in SPEC.shapes.items()}
    next_obs = {k: rng.normal(size=(n, *s)).astype(np.float32) for k, s in SPEC.shapes.items()}
    return Batch(obs, rng.uniform(-1, 1, (n, 2)).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32),
                 next_obs, np.full(n, 0.97, np.float32), np.zeros(n, bool), np.zeros(n, bool),
                 mc_return=np.ones(n, np.float32))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_registered_agent_keeps_the_contract(name):
    torch.manual_seed(0)
    config = agent_config(name=name, **SMALL[name])
    agent = make_agent(SPEC, 2, config)
    obs = {k: v[0] for k, v in _batch().obs.items()}
    action = agent.act(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
    metrics = agent.update([_batch(seed=1), _batch(seed=2)])
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    assert agent.updates >= 1
    # state_dict: a fresh agent resumes exactly where this one is
    twin = make_agent(SPEC, 2, config)
    twin.load_state_dict(copy.deepcopy(agent.state_dict()))  # as through a checkpoint file: no shared tensors
    torch.manual_seed(5)
    after = agent.update([_batch(seed=3)])
    torch.manual_seed(5)
    assert twin.update([_batch(seed=3)]) == after
    # policy_state: exactly what acting deterministically needs, as float32 arrays
    shipped = agent.policy_state()
    assert shipped and all(v.dtype == np.float32 for v in shipped.values())
    actor = make_agent(SPEC, 2, config)
    actor.load_policy_state(shipped)
    np.testing.assert_array_equal(actor.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_unknown_agents_and_foreign_fields_name_the_key():
    with pytest.raises(ValueError, match="agent.name 'nope'"):
        agent_config(name="nope")
    with pytest.raises(ValueError, match="agent.alpha"):
        agent_config(name="sac", alpha=1.0)  # a Cal-QL field
    assert type(agent_config(name="calql", alpha=1.0)).__name__ == "CalQLConfig"


def test_crossq_has_no_target_network_and_normalises_both_halves_of_the_cross_batch():
    from robot_rl.agents.crossq import BatchRenorm

    torch.manual_seed(0)
    agent = make_agent(SPEC, 2, agent_config(name="crossq", **SMALL["crossq"]))
    assert not any("target" in key for key in agent.state_dict())
    batch = _batch(n=64)
    batch.next_obs = {k: v + 10.0 for k, v in batch.next_obs.items()}  # next states far from the states
    agent.update([batch])
    first = agent.critics[0][0]
    assert isinstance(first, BatchRenorm)
    # The input statistics moved towards the mean over (s, a) AND (s', a'): about 5 in the obs columns.
    observed = first.running_mean[:8] / agent.config.renorm_momentum
    assert 3.0 < float(observed.mean()) < 7.0


def test_crossq_fits_a_one_step_return():
    torch.manual_seed(0)
    agent = make_agent(SPEC, 2, agent_config(name="crossq", **SMALL["crossq"], renorm_warmup=50))
    batch = _batch(n=128)
    batch.discount[:] = 0.0  # Q(s, a) = r
    batch.reward = (batch.obs["proprio"][:, 0] > 0).astype(np.float32)
    for _ in range(300):
        metrics = agent.update([batch])
    assert metrics["critic_loss"] < 0.05


def test_a_new_agent_is_one_class_and_one_registry_line(tmp_path):
    """Registered here, never named in train.py or distributed.py: it trains, checkpoints and resumes."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class TowardsZeroConfig(AgentConfig):
        name: str = "towards_zero"
        lr: float = 0.1

    class TowardsZero(Agent):
        """A 'policy' that is one learned action, pulled towards the batch's mean action."""

        def __init__(self, obs_spec, action_dim, config, device="cpu"):
            self.config, self.mean = config, torch.nn.Linear(1, action_dim)

        def act(self, obs, deterministic=False):
            with torch.no_grad():
                return self.mean(torch.ones(1)).clamp(-1, 1).numpy()

        def update(self, batches, actor=True):
            for batch in batches:
                target = torch.as_tensor(batch.action).mean(0)
                with torch.no_grad():
                    self.mean.bias.lerp_(target - self.mean.weight[:, 0], self.config.lr)
                self.updates += 1
            return {"action_norm": float(self.mean.bias.detach().norm())}

        def policy_modules(self):
            return {"mean": self.mean}

        def state_dict(self):
            return {"mean": self.mean.state_dict(), "updates": self.updates}

        def load_state_dict(self, state):
            self.mean.load_state_dict(state["mean"])
            self.updates = state["updates"]

    import sys
    import types

    module = types.ModuleType("towards_zero_agent")
    module.TowardsZeroConfig, module.TowardsZero = TowardsZeroConfig, TowardsZero
    sys.modules["towards_zero_agent"] = module
    register_agent("towards_zero", "towards_zero_agent:TowardsZeroConfig", "towards_zero_agent:TowardsZero")
    try:
        values = {"agent": {"name": "towards_zero", "utd": 3}, "num_demos": 1, "total_env_steps": 120,
                  "learning_starts": 50, "eval_every": 120, "eval_episodes": 1, "checkpoint_every": 100,
                  "out_dir": str(tmp_path), "progress": False, "tensorboard": False}
        result = Trainer(TrainConfig.from_dict(values)).run()
        assert result["updates"] == 3 * (120 - 50 + 1)
        resumed = Trainer(TrainConfig.from_dict({**values, "total_env_steps": 150}), resume=True)
        assert resumed.agent.updates == result["updates"]
        assert resumed.run()["updates"] == 3 * (150 - 50 + 1)
    finally:
        del AGENTS["towards_zero"]
        del sys.modules["towards_zero_agent"]
