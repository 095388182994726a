"""SAC/RLPD losses against hand-computed values, the batched ensemble, and DrQ augmentation."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.augment import random_color, random_shift
from robot_rl.networks import EnsembleMLP
from robot_rl.replay import Batch, ObsSpec

torch.set_num_threads(1)
SPEC = ObsSpec({"proprio": (3,)}, {"proprio": "float32"})



def _batch(n=8, reward=1.0, discount=1.0, seed=0):
    rng = np.random.default_rng(seed)
    obs = {"proprio": rng.normal(size=(n, 3)).astype(np.float32)}
    nxt = {"proprio": rng.normal(size=(n, 3)).astype(np.float32)}
    return Batch(obs, rng.uniform(-1, 1, (n, 2)).astype(np.float32), np.full(n, reward, np.float32), nxt,
                 np.full(n, discount, np.float32), np.zeros(n, bool), np.zeros(n, bool))


class _ConstantCritic(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values, dtype=torch.float32)

    def forward(self, x, members=None):
        values = self.values if members is None else self.values[members]
        return values.view(-1, 1, 1).expand(-1, x.shape[0], 1)


def test_precision_choice():
    assert SACAgent(SPEC, 2, SACConfig(precision="fp32")).bf16 is False
    assert SACAgent(SPEC, 2, SACConfig(precision="bf16")).bf16 is True
    batch = _batch()
    agent = SACAgent(SPEC, 2, SACConfig(precision="bf16"))
    metrics = agent.update([batch])
    assert np.isfinite(metrics["critic_loss"]) and all(p.dtype == torch.float32 for p in agent.critic.parameters())


def test_target_is_reward_plus_discounted_min_of_target_critics_and_truncation_bootstraps():
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", num_critics=2, critic_subset=2, discount=0.9, backup_entropy=False))
    agent.critic_target = _ConstantCritic([3.0, 2.0])
    features = torch.zeros(4, 3)
    reward = torch.tensor([1.0, 1.0, 0.0, 0.5])
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0])  # step 1 terminated; the others (incl. truncated) bootstrap
    target = agent.critic_target_value(reward, mask, features)
    torch.testing.assert_close(target, torch.tensor([1 + 0.9 * 2, 1.0, 0.9 * 2, 0.5 + 0.9 * 2]))


def test_entropy_backup_subtracts_temperature_times_log_prob():
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", backup_entropy=True, discount=0.5, init_temperature=0.5))
    agent.critic_target = _ConstantCritic([1.0, 1.0])
    torch.manual_seed(0)
    target = agent.critic_target_value(torch.zeros(1), torch.ones(1), torch.zeros(1, 3))
    torch.manual_seed(0)
    _, log_prob = agent.actor.sample(torch.zeros(1, 3))
    torch.testing.assert_close(target, 0.5 * (1.0 - 0.5 * log_prob))


def test_random_subset_of_ten_critics():
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", num_critics=10, critic_subset=2, discount=0.5))
    agent.critic_target = _ConstantCritic(list(range(10, 20)))
    torch.manual_seed(1)
    values = {float(agent.critic_target_value(torch.zeros(1), torch.ones(1), torch.zeros(1, 3))) for _ in range(50)}
    assert len(values) > 3 and min(values) >= 5 and max(values) <= 9  # 0.5 * (min of 2 distinct <= 18)


def test_critic_regresses_to_the_target():
    torch.manual_seed(0)
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", critic_lr=1e-3))
    batch = _batch(reward=1.0, discount=0.0)  # terminal: target is exactly the reward
    first = agent.update_critic(batch)["critic_loss"]
    for _ in range(200):
        last = agent.update_critic(batch)["critic_loss"]
    assert last < 0.01 * first
    assert agent.updates == 201


@pytest.mark.parametrize("target_entropy, direction", [(10.0, 1), (-100.0, -1)])
def test_temperature_moves_toward_the_target_entropy(target_entropy, direction):
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", target_entropy=target_entropy, init_temperature=0.01))
    before = float(agent.temperature)
    for _ in range(5):
        agent.update_actor(torch.zeros(16, 3))
    assert np.sign(float(agent.temperature) - before) == direction
    assert agent.target_entropy == target_entropy
    assert SACAgent(SPEC, 4).target_entropy == -2.0  # default: -|A| / 2


def test_actor_update_leaves_critic_weights_alone_and_improves_q():
    torch.manual_seed(0)
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", init_temperature=1e-4, actor_lr=1e-2))
    critic_before = [p.clone() for p in agent.critic.parameters()]
    features = torch.zeros(64, 3)

    def q_of_policy():
        with torch.no_grad():
            action = agent.actor.deterministic(features)
            return float(agent.critic(torch.cat([features, action], -1)).mean())

    before = q_of_policy()
    for _ in range(50):
        agent.update_actor(features)
    assert q_of_policy() > before
    for a, b in zip(critic_before, agent.critic.parameters()):
        assert torch.equal(a, b)


def test_update_does_exactly_utd_critic_updates():
    agent = SACAgent(SPEC, 2, SACConfig(utd=3))
    metrics = agent.update([_batch(seed=i) for i in range(3)])
    assert agent.updates == 3 and {"critic_loss", "actor_loss", "temperature"} <= set(metrics)


def test_ensemble_equals_independent_mlps():
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 5, (7, 6), 1, layer_norm=True)
    with torch.no_grad():
        for s in ens.norm_scale:
            s.uniform_(0.5, 1.5)
    x = torch.randn(4, 5)
    out = ens(x)
    for m in range(3):
        h = x
        for i, layer in enumerate(ens.layers):
            h = h @ layer.weight[m] + layer.bias[m]
            h = torch.nn.functional.layer_norm(h, h.shape[-1:]) * ens.norm_scale[i][m] + ens.norm_shift[i][m]
            h = torch.relu(h)
        torch.testing.assert_close(out[m], h @ ens.head.weight[m] + ens.head.bias[m])
    members = torch.tensor([2, 0])
    torch.testing.assert_close(ens(x, members), out[members])


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    from robot_rl.networks import TanhGaussianActor

    torch.manual_seed(0)
    actor = TanhGaussianActor(3, (8,), 2)
    features = torch.randn(5, 3)
    torch.manual_seed(1)
    action, log_prob = actor.sample(features)
    mean, log_std = actor(features)
    pre = torch.atanh(action.clamp(-0.999999, 0.999999))
    normal = torch.distributions.Normal(mean, log_std.exp())
    expected = (normal.log_prob(pre) - torch.log(1 - action.pow(2) + 1e-12)).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=1e-3, rtol=1e-3)
    assert action.abs().max() < 1


def test_random_shift_crops_the_padded_image():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    same = random_shift(images, pad=0)
    torch.testing.assert_close(same, images)
    torch.manual_seed(0)
    shifted = random_shift(images, pad=2)
    assert shifted.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="replicate")
    for i in range(2):
        crops = [padded[i, :, y:y + 6, x:x + 6] for y in range(5) for x in range(5)]
        assert any(torch.equal(shifted[i], c) for c in crops)


def test_random_color_redraws_brightness_contrast_and_channel_shift_per_image_within_its_bounds():
    images = torch.rand(64, 3, 8, 8)
    torch.testing.assert_close(random_color(images, 0.0), images)
    # A flat grey image has no contrast to scale: it becomes grey * brightness + shift per channel.
    grey = torch.full((500, 3, 4, 4), 0.5)
    out = random_color(grey, 0.2, torch.Generator().manual_seed(0))
    assert torch.all(out >= 0.5 * 0.8 - 0.1 - 1e-6) and torch.all(out <= 0.5 * 1.2 + 0.1 + 1e-6)
    assert torch.all(out == out[:, :, :1, :1])  # one draw per image and channel, not per pixel
    per_image = out[:, :, 0, 0]
    assert per_image.std(dim=0).min() > 0.04  # every channel varies across images
    assert (per_image[:, 0] - per_image[:, 1]).abs().max() > 0.05  # channels are shifted apart
    assert out.min() < 0.5 * 0.8 - 0.1 + 0.05 and out.max() > 0.5 * 1.2 + 0.1 - 0.05  # the range is used
    # Contrast: an image's spread about its mean is scaled by up to 1.2 * 1.2 (contrast, then brightness).
    halves = torch.cat([torch.full((200, 3, 2, 4), 0.4), torch.full((200, 3, 2, 4), 0.6)], dim=2)
    varied = random_color(halves, 0.2, torch.Generator().manual_seed(1))
    spread = varied.amax((2, 3)) - varied.amin((2, 3))
    assert spread.min() >= 0.2 * 0.64 - 1e-5 and spread.max() <= 0.2 * 1.44 + 1e-5 and spread.std() > 0.02
    assert random_color(torch.ones(4, 3, 2, 2), 0.9).max() <= 1.0  # clamped to the image range


def test_color_augmentation_changes_training_features_only():
    spec = ObsSpec({"images/front": (32, 32, 3)}, {"images/front": "uint8"})
    obs = {"images/front": torch.from_numpy(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))}
    plain = SACAgent(spec, 2, SACConfig(hidden_dims=(8,), feature_dim=8, augment_pad=0, precision="fp32"))
    colored = SACAgent(spec, 2, SACConfig(hidden_dims=(8,), feature_dim=8, augment_pad=0, precision="fp32",
                                          augment_color=0.3))
    colored.load_state_dict(plain.state_dict())
    torch.testing.assert_close(colored.features(obs), plain.features(obs))  # acting and evaluation: untouched
    torch.testing.assert_close(plain.features(obs, augment=True), plain.features(obs))
    assert not torch.allclose(colored.features(obs, augment=True), plain.features(obs))


def test_pixel_agent_acts_and_updates():
    spec = ObsSpec({"proprio": (3,), "images/front": (32, 32, 3), "images/wrist": (32, 32, 3)},
                   {"proprio": "float32", "images/front": "uint8", "images/wrist": "uint8"})
    agent = SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(hidden_dims=(32, 32), feature_dim=8))
    rng = np.random.default_rng(0)
    obs = {"proprio": rng.normal(size=(4, 3)).astype(np.float32),
           "images/front": rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8),
           "images/wrist": rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)}
    action = agent.act({k: v[0] for k, v in obs.items()}, deterministic=True)
    assert action.shape == (2,) and np.all(np.abs(action) < 1)
    encoder_before = [p.clone() for p in agent.encoder.parameters()]
    assert encoder_before
    batch = Batch(obs, rng.uniform(-1, 1, (4, 2)).astype(np.float32), np.ones(4, np.float32), obs,
                  np.ones(4, np.float32), np.zeros(4, bool), np.zeros(4, bool))
    agent.update([batch])
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, agent.encoder.parameters()))


@pytest.mark.parametrize("field, value", [("num_critics", 0), ("critic_subset", 5), ("discount", 1.0),
                                          ("utd", 0), ("batch_size", 1), ("hidden_dims", ()),
                                          ("augment_color", 1.0), ("augment_color", -0.1)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SACConfig(**{field: value})


def test_grasp_labels_follow_the_env_thresholds():
    values = torch.tensor([-1.0, -0.6, -0.4, 0.0, 0.49, 0.5, 1.0])
    assert SACAgent.grasp_labels(values).tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_grasp_target_is_double_dqn_with_toggle_penalty():
    agent = SACAgent(SPEC, 3, SACConfig(precision="fp32", grasp_critic=True, grasp_penalty=0.1, discount=0.5))
    assert agent.continuous_dim == 2
    agent.grasp = _ConstantHead([0.0, 5.0, 1.0])  # the online head prefers "stay"
    agent.grasp_target = _ConstantHead([9.0, 2.0, 7.0])  # ...which the target values at 2, not its max 9
    target = agent.grasp_target_value(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]),
                                      torch.tensor([1.0, 0.0]), torch.zeros(2, 3))
    torch.testing.assert_close(target, torch.tensor([1.0 - 0.1 + 0.5 * 2.0, 0.0]))


class _ConstantHead(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values)

    def forward(self, x):
        return self.values.expand(x.shape[0], -1)


def test_grasp_agent_acts_with_three_way_gripper_and_learns():
    torch.manual_seed(0)
    agent = SACAgent(SPEC, 3, SACConfig(precision="fp32", grasp_critic=True, grasp_epsilon=0.0))
    action = agent.act({"proprio": np.zeros(3, np.float32)}, deterministic=True)
    assert action.shape == (3,) and action[-1] in (-1.0, 0.0, 1.0)
    batch = _batch(n=32, reward=1.0, discount=0.0)
    batch.action = np.concatenate([batch.action, np.ones((32, 1), np.float32)], -1)  # always "open"
    batch.gripper_toggled = np.zeros(32, bool)
    losses = [agent.update([batch])["grasp_loss"] for _ in range(100)]
    assert losses[-1] < 0.05 * losses[0]
    with torch.no_grad():
        q = agent.grasp(torch.as_tensor(batch.obs["proprio"]))
    assert torch.allclose(q[:, 2], torch.ones(32), atol=0.1)  # Q(open) -> reward of a terminal step


PIXELS_AND_PRIVILEGED = ObsSpec({"proprio": (3,), "privileged": (5,), "images/front": (32, 32, 3)},
                                {"proprio": "float32", "privileged": "float32", "images/front": "uint8"})


def _pixel_batch_with_privileged_state(n=8):
    rng = np.random.default_rng(0)
    obs = {"proprio": rng.normal(size=(n, 3)).astype(np.float32),
           "privileged": rng.normal(size=(n, 5)).astype(np.float32),
           "images/front": rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)}
    batch = Batch(obs, rng.uniform(-1, 1, (n, 2)).astype(np.float32), np.ones(n, np.float32), obs,
                  np.ones(n, np.float32), np.zeros(n, bool), np.zeros(n, bool))
    return obs, batch


def test_asymmetric_critic_reads_privileged_state_and_the_actor_trains_the_encoder():
    agent = SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(hidden_dims=(32, 32), feature_dim=8, asymmetric=True))
    assert agent.critic_encoder.vector_keys == ["proprio", "privileged"] and not agent.critic_encoder.image_keys
    assert "privileged" not in agent.encoder.vector_keys and agent.encoder.image_keys == ["images/front"]
    obs, batch = _pixel_batch_with_privileged_state()
    before = [p.clone() for p in agent.encoder.parameters()]
    agent.update([batch, batch])
    assert agent.updates == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.encoder.parameters()))
    action = agent.act({k: v[0] for k, v in obs.items() if k != "privileged"} | {"privileged": obs["privileged"][0]})
    assert action.shape == (2,)
    with pytest.raises(ValueError, match="privileged"):
        SACAgent(ObsSpec({"proprio": (3,)}, {"proprio": "float32"}), 2, SACConfig(asymmetric=True))


def test_frozen_encoder_keeps_the_warm_started_features_while_the_actor_head_and_critics_learn():
    from robot_rl.agents.sac import warm_start_sac

    torch.manual_seed(0)
    student = SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(hidden_dims=(32, 32), feature_dim=8, asymmetric=True))
    torch.manual_seed(1)
    agent = SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(hidden_dims=(32, 32), feature_dim=8, asymmetric=True, freeze_encoder=True))
    warm_start_sac(agent, student.state_dict(), critics=False)
    obs, batch = _pixel_batch_with_privileged_state()
    actor, critic = ([p.clone() for p in net.parameters()] for net in (agent.actor, agent.critic))
    for _ in range(3):
        agent.update([batch, batch])
    for ours, theirs in zip(agent.encoder.state_dict().values(), student.encoder.state_dict().values()):
        assert torch.equal(ours, theirs)  # still the student's encoder, after the updates
    assert any(not torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters()))


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_distillation_step_runs_the_conv_net_in_the_students_precision_and_fits_the_labels(precision):
    """The conv net is most of a distillation step's cost: it runs under the student's autocast (bf16
    where the hardware has it), and the weights, the loss and the fit stay float32."""
    from robot_rl.agents.distill import distill_update, make_student_optimizer

    torch.manual_seed(0)
    student = SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(hidden_dims=(32, 32), feature_dim=8, precision=precision))
    seen = []
    student.encoder.conv.trunk[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    optimizer = make_student_optimizer(student, lr=1e-3)
    obs, batch = _pixel_batch_with_privileged_state()
    batch = dataclasses.replace(batch, action=np.tanh(obs["proprio"][:, :2]))  # labels the student can fit
    losses = [distill_update(student, optimizer, batch)["distill_loss"] for _ in range(60)]
    assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert all(p.dtype == torch.float32 for net in (student.encoder, student.actor) for p in net.parameters())
    assert losses[-1] < 0.3 * losses[0]


def test_compiled_agent_keeps_checkpoint_keys():
    plain = SACAgent(SPEC, 2, SACConfig(hidden_dims=(16, 16)))
    compiled = SACAgent(SPEC, 2, SACConfig(hidden_dims=(16, 16), compile=True))
    assert plain.state_dict()["critic"].keys() == compiled.state_dict()["critic"].keys()
    compiled.load_state_dict(plain.state_dict())
    metrics = compiled.update([_batch(n=16)])
    assert np.isfinite(metrics["critic_loss"])


def test_iql_expectile_loss_and_value_tracks_the_upper_expectile():
    from robot_rl.agents.iql import IQLAgent, IQLConfig, expectile_loss

    diff = torch.tensor([1.0, -1.0])
    torch.testing.assert_close(expectile_loss(diff, 0.7), torch.tensor((0.7 * 1 + 0.3 * 1) / 2))
    torch.testing.assert_close(expectile_loss(torch.tensor([2.0]), 0.9), torch.tensor(0.9 * 4))
    torch.manual_seed(0)
    agent = IQLAgent(SPEC, 2, IQLConfig(precision="fp32", hidden_dims=(32, 32), tau=0.05, expectile=0.9))
    batch = _batch(n=64, reward=1.0, discount=0.0)  # terminal: Q -> 1 for dataset actions
    for _ in range(300):
        metrics = agent.update([batch])
    with torch.no_grad():
        features = torch.as_tensor(batch.obs["proprio"])
        v = agent.value(features).squeeze(-1)
    assert metrics["critic_loss"] < 0.05 and torch.allclose(v, torch.ones(64), atol=0.15)


def test_pretrained_backbone_from_a_local_directory_is_frozen_and_shared(tmp_path):
    import transformers  # the vlm extra (installed by .ci/run)

    config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                       layer_type="basic")
    transformers.ResNetModel(config).save_pretrained(tmp_path / "tiny_resnet")
    spec = ObsSpec({"proprio": (3,), "images/front": (32, 32, 3), "images/wrist": (32, 32, 3)},
                   {"proprio": "float32", "images/front": "uint8", "images/wrist": "uint8"})
    agent = SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(hidden_dims=(16, 16), feature_dim=8,
                                        backbone=str(tmp_path / "tiny_resnet")))
    backbone = agent.encoder.conv.backbone
    frozen = [p.clone() for p in backbone.parameters()]
    assert all(not p.requires_grad for p in frozen)
    optimised = {id(p) for group in agent.critic_optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in backbone.parameters())
    rng = np.random.default_rng(0)
    obs = {"proprio": rng.normal(size=(4, 3)).astype(np.float32),
           "images/front": rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8),
           "images/wrist": rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)}
    batch = Batch(obs, rng.uniform(-1, 1, (4, 2)).astype(np.float32), np.ones(4, np.float32), obs,
                  np.ones(4, np.float32), np.zeros(4, bool), np.zeros(4, bool))
    projection = [p.clone() for p in agent.encoder.conv.project.parameters()]
    agent.update([batch])
    assert all(torch.equal(a, b) for a, b in zip(frozen, backbone.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(projection, agent.encoder.conv.project.parameters()))
    assert agent.act({k: v[0] for k, v in obs.items()}).shape == (2,)
    with pytest.raises(ValueError, match="cannot load the backbone"):
        SACAgent(PIXELS_AND_PRIVILEGED, 2, SACConfig(backbone=str(tmp_path / "missing")))


def test_conservative_penalty_by_hand_and_the_calibration_floor():
    from robot_rl.agents.calql import conservative_penalty

    q_data = torch.tensor([[1.0]])  # 1 critic, 1 state
    q_random = torch.tensor([[[0.0]]])  # one uniform action; 2-d actions: density 1/4, log -2 log 2
    q_policy = torch.tensor([[[-3.0]]])
    log_prob = torch.tensor([[0.5]])
    expected = torch.logsumexp(torch.tensor([0.0 + 2 * math.log(2.0), -3.0 - 0.5]), 0) - 1.0
    gap = conservative_penalty(q_data, q_random, q_policy, log_prob, 2, None)
    torch.testing.assert_close(gap, expected.reshape(1, 1))
    # Cal-QL: a policy action's Q is floored at the Monte-Carlo return (2.0 > -3.0).
    calibrated = conservative_penalty(q_data, q_random, q_policy, log_prob, 2, torch.tensor([2.0]))
    expected = torch.logsumexp(torch.tensor([0.0 + 2 * math.log(2.0), 2.0 - 0.5]), 0) - 1.0
    torch.testing.assert_close(calibrated, expected.reshape(1, 1))


def test_calql_pushes_down_off_dataset_actions_but_not_below_the_return():
    from robot_rl.agents.calql import CalQLAgent, CalQLConfig

    torch.manual_seed(0)
    agent = CalQLAgent(SPEC, 2, CalQLConfig(precision="fp32", hidden_dims=(32, 32), tau=0.05, alpha=5.0,
                                            num_actions=4))
    batch = _batch(n=64, reward=1.0, discount=0.0)
    batch.action[:] = 0.5  # the dataset always does this
    batch.mc_return = np.ones(64, np.float32)
    for _ in range(300):
        metrics = agent.update([batch])
    with torch.no_grad():
        features = torch.as_tensor(batch.obs["proprio"])
        q_data = agent.sac.critic(torch.cat([features, torch.full((64, 2), 0.5)], -1)).mean()
        q_other = agent.sac.critic(torch.cat([features, torch.full((64, 2), -0.8)], -1)).mean()
    # CQL raises dataset actions (the -Q(s, a_data) term) and lowers the rest: the dataset action is
    # not valued below its true return of 1, an action the data never took is valued well below it.
    assert q_data.item() > 0.9
    assert q_other < q_data - 0.5
    assert np.isfinite(metrics["cql_gap"]) and "temperature" in metrics
    with pytest.raises(ValueError, match="mc_return"):
        agent.update([_batch(n=8)])


def test_anchor_penalty_pulls_the_actor_toward_the_pretrained_one():
    from robot_rl.agents.sac import warm_start_sac

    torch.manual_seed(0)
    pretrained = SACAgent(SPEC, 2, SACConfig(precision="fp32", hidden_dims=(16, 16)))
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", hidden_dims=(16, 16), actor_lr=1e-2))
    warm_start_sac(agent, pretrained.state_dict())
    with torch.no_grad():  # move the actor away, then let the penalty alone bring it back
        for p in agent.actor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    features = torch.as_tensor(_batch(n=64).obs["proprio"])

    def drift():
        with torch.no_grad():
            return (agent.actor.deterministic(features) - agent.anchor.deterministic(features)).pow(2).sum(-1).mean()

    agent.anchor_weight = 1e4  # dwarfs the Q and entropy terms
    before = drift()
    for _ in range(50):
        agent.update_actor(features)
    assert drift() < 0.2 * before
    assert all(not p.requires_grad for p in agent.anchor.parameters())


def test_warm_start_without_critics_takes_the_actor_and_leaves_fresh_critics():
    from robot_rl.agents.sac import warm_start_sac

    torch.manual_seed(0)
    pretrained = SACAgent(SPEC, 2, SACConfig(precision="fp32", hidden_dims=(16, 16)))
    for _ in range(3):
        pretrained.update([_batch(n=16)])
    torch.manual_seed(1)
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", hidden_dims=(16, 16)))
    fresh = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    warm_start_sac(agent, pretrained.state_dict(), critics=False)
    for ours, theirs in zip(agent.actor.parameters(), pretrained.actor.parameters()):
        assert torch.equal(ours, theirs)
    assert all(torch.equal(v, fresh[k]) for k, v in agent.critic.state_dict().items())
    assert not all(torch.equal(v, pretrained.critic.state_dict()[k]) for k, v in agent.critic.state_dict().items())
    warm_start_sac(agent, pretrained.state_dict())  # the default takes the critics too
    assert all(torch.equal(v, pretrained.critic.state_dict()[k]) for k, v in agent.critic.state_dict().items())


def test_h2o_penalty_by_hand_and_it_lowers_q_where_the_simulator_looks_unreal():
    """H2O's conservative term: sum over sim samples of omega * Q(s, pi(s)), omega ~ 1 / dynamics ratio,
    minus the mean Q of the robot's transitions; with it, Q on the least real sim states falls."""
    torch.manual_seed(0)
    real, sim = _batch(n=8, reward=0.5, discount=0.0, seed=1), _batch(n=8, reward=0.5, discount=0.0, seed=2)
    sim.weight, sim.from_sim = np.array([0.25, 4.0] * 4, np.float32), np.ones(8, bool)  # even: unreal
    batch = Batch.concat(real, sim)
    assert batch.from_sim.tolist() == [False] * 8 + [True] * 8 and batch.weight[:8].tolist() == [1.0] * 8
    agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", num_critics=2, critic_subset=2))
    obs = {"proprio": torch.as_tensor(batch.obs["proprio"])}
    features = agent._critic_features(obs)
    q = agent.critic(torch.cat([features, torch.as_tensor(batch.action)], -1)).squeeze(-1)
    torch.manual_seed(5)
    penalty = agent._sim_penalty(obs, features, q, batch)
    torch.manual_seed(5)
    action, _ = agent.actor.sample(features[8:])
    q_policy = agent.critic(torch.cat([features[8:], action], -1)).squeeze(-1)
    omega = torch.tensor([4.0, 0.25] * 4) / 17.0
    torch.testing.assert_close(penalty, (q_policy * omega).sum(1) - q[:, :8].mean(1))

    def trained(beta):
        torch.manual_seed(0)
        agent = SACAgent(SPEC, 2, SACConfig(precision="fp32", num_critics=2, critic_subset=2, critic_lr=1e-3))
        agent.sim_penalty_weight = beta
        for _ in range(300):
            metrics = agent.update_critic(batch)
        with torch.no_grad():
            features = agent._critic_features(obs)
            q_sim = agent.critic(torch.cat([features[8:], agent.actor.deterministic(features[8:])], -1)).mean(0)
        return q_sim.squeeze(-1), metrics

    plain, plain_metrics = trained(0.0)
    conservative, metrics = trained(1.0)
    assert "sim_penalty" in metrics and "sim_penalty" not in plain_metrics
    assert conservative[0::2].mean() < plain[0::2].mean() - 0.05  # the unreal states lose value
