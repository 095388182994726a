"""The MuJoCo tasks through their public gymnasium API: spaces, seeding, episode ends, bad input."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import sim
from sim.experts import expert_for

TASK_IDS = sorted(sim.TASKS)


def _rollout(env, seed, steps, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            break
    return trace, env.data.qpos.copy()


@pytest.mark.parametrize("task", TASK_IDS)
def test_state_observations_match_the_space(task):
    env = sim.make(task, privileged=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"proprio", "object", "privileged"}
    assert info["success"] is False
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and not terminated and not truncated
    assert info["executed_action"].shape == env.action_space.shape
    assert [n for n, _ in env.metadata["proprio_layout"]][0] == "ee_position"


@pytest.mark.parametrize("task", TASK_IDS)
def test_pixel_observations_are_uint8_images_per_named_camera(task):
    env = sim.make(task, obs_mode="pixels", image_size=64)
    obs, _ = env.reset(seed=1)
    assert set(obs["images"]) == {"front", "wrist"}
    for image in obs["images"].values():
        assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
        assert image.std() > 5  # a real rendering, not a blank frame
    assert env.observation_space.contains(obs)
    first = obs["images"]["wrist"].copy()
    obs, *_ = env.step(np.array([1.0, 0.0, -1.0, -1.0])[: env.action_space.shape[0]])
    assert not np.array_equal(first, obs["images"]["wrist"])  # the wrist camera moves with the arm
    env.close()


@pytest.mark.parametrize("task", TASK_IDS)
def test_same_seed_same_episode_bit_for_bit(task):
    env_a = sim.make(task, randomization={"enabled": True})
    env_b = sim.make(task, randomization={"enabled": True})
    trace_a, qpos_a = _rollout(env_a, seed=7, steps=30)
    trace_b, qpos_b = _rollout(env_b, seed=7, steps=30)
    assert np.array_equal(qpos_a, qpos_b)
    for step_a, step_b in zip(trace_a[1:], trace_b[1:]):
        for key in step_a[0]:
            assert np.array_equal(step_a[0][key], step_b[0][key])
        assert step_a[1:] == step_b[1:]
    _, qpos_c = _rollout(env_a, seed=8, steps=30)
    assert not np.array_equal(qpos_a, qpos_c)


def test_pixels_are_reproducible_too():
    env = sim.make("PickCube-v0", obs_mode="pixels", image_size=48, randomization={"enabled": True})
    first = _rollout(env, seed=3, steps=5)[0][-1][0]["images"]["front"]
    again = _rollout(env, seed=3, steps=5)[0][-1][0]["images"]["front"]
    assert np.array_equal(first, again)
    env.close()


@pytest.mark.parametrize("task", TASK_IDS)
def test_time_limit_truncates_and_does_not_terminate(task):
    env = sim.make(task, episode_steps=5)
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape)
    for step in range(5):
        _, reward, terminated, truncated, info = env.step(zero)
        assert not terminated and reward == 0.0 and not info["success"]
        assert truncated == (step == 4)


@pytest.mark.parametrize("task", TASK_IDS)
def test_success_terminates_with_reward_one(task):
    env = sim.make(task)
    expert = expert_for(task, env)
    env.reset(seed=11)
    for _ in range(100):
        _, reward, terminated, truncated, info = env.step(expert.act())
        if terminated or truncated:
            break
    assert terminated and not truncated and info["success"] and reward == 1.0


@pytest.mark.parametrize("task", TASK_IDS)
def test_dense_reward_is_bounded_and_rises_towards_success(task):
    env = sim.make(task, reward="dense")
    expert = expert_for(task, env)
    env.reset(seed=5)
    rewards = []
    for _ in range(100):
        _, reward, terminated, truncated, _ = env.step(expert.act())
        rewards.append(reward)
        if terminated or truncated:
            break
    assert all(-1.0 <= r < 0.0 for r in rewards[:-1])
    assert rewards[-1] == 0.0 and rewards[-2] > rewards[0]


def test_gymnasium_make_uses_the_registered_ids():
    env = gym.make("robot_rl/PickCube-v0", obs_mode="state")
    obs, _ = env.reset(seed=0)
    assert "object" in obs
    env.close()


@pytest.mark.parametrize("task", TASK_IDS)
def test_nan_and_misshaped_actions_raise_and_never_reach_the_physics(task):
    env = sim.make(task)
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape))
    before = (env.data.time, env.data.qpos.copy(), env.data.ctrl.copy(), env.steps)
    bad = np.zeros(env.action_space.shape)
    bad[1] = np.nan
    with pytest.raises(ValueError, match="dy"):
        env.step(bad)
    bad[1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        env.step(bad)
    with pytest.raises(ValueError, match=r"shape \(%d,\)" % env.action_space.shape[0]):
        env.step(np.zeros(env.action_space.shape[0] + 1))
    assert env.data.time == before[0] and env.steps == before[3]
    assert np.array_equal(env.data.qpos, before[1]) and np.array_equal(env.data.ctrl, before[2])


def test_out_of_range_actions_are_clipped_not_amplified():
    env = sim.make("PickCube-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([50.0, -50.0, 0.0, 3.0]))
    np.testing.assert_array_equal(info["executed_action"], [1.0, -1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"obs_mode": "rgb"}, "obs_mode"),
        ({"image_size": 4}, "image_size"),
        ({"control_hz": 7.0}, "control_hz"),
        ({"physics_hz": 100.0}, "physics_hz"),
        ({"episode_steps": 0}, "episode_steps"),
        ({"reward": "shaped"}, "reward"),
        ({"cameras": ("front", "ceiling")}, "cameras"),
        ({"action": {"frame": "tool"}}, "frame"),
        ({"randomization": {"friction_scale": (2.0, 1.0)}}, "friction_scale"),
        ({"safety": {"workspace_low": (1, 0, 0), "workspace_high": (0, 1, 1)}}, "workspace_low"),
        ({"gains": {"translational_stiffness": (-1, 1, 1)}}, "translational_stiffness"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        sim.make("PickCube-v0", **overrides)


def test_unknown_task_id_lists_the_valid_ones():
    with pytest.raises(ValueError, match="PickCube-v0"):
        sim.make("PickBanana-v0")


def test_randomization_is_seeded_applied_and_never_compounds():
    env = sim.make("PickCube-v0", randomization={"enabled": True, "action_latency_steps": (1, 1)})
    model = env.model
    nominal_friction = env.randomizer._nominal["geom_friction"].copy()
    cube = model.body("cube").id
    nominal_mass = env.randomizer._nominal["body_mass"][cube]
    _, info_a = env.reset(seed=1)
    sample_a = info_a["randomization"]
    assert model.body_mass[cube] == pytest.approx(nominal_mass * sample_a["object_mass_scale"])
    np.testing.assert_allclose(model.geom_friction[:, 0], nominal_friction[:, 0] * sample_a["friction_scale"])
    assert env.arm.gains.translational_stiffness[0] == pytest.approx(
        env.config.gains.translational_stiffness[0] * sample_a["gain_scale"])
    for _ in range(5):
        env.reset()
    _, info_again = env.reset(seed=1)
    assert info_again["randomization"] == sample_a
    assert model.body_mass[cube] == pytest.approx(nominal_mass * sample_a["object_mass_scale"])
    _, info_b = env.reset(seed=2)
    assert info_b["randomization"] != sample_a
    off = sim.make("PickCube-v0")
    _, info_off = off.reset(seed=1)
    assert info_off["randomization"]["friction_scale"] == 1.0


def test_action_latency_delays_the_applied_action_and_reports_the_sent_one():
    env = sim.make("PickCube-v0", randomization={
        "enabled": True, "action_latency_steps": (2, 2), "observation_noise_std": 0.0})
    env.reset(seed=0)
    start = env.target_position.copy()
    actions = [np.array([0.5, 0, 0, 1.0]), np.array([0, 0.5, 0, 1.0]), np.array([0, 0, 0.5, 1.0])]
    infos = [env.step(a)[-1] for a in actions]
    np.testing.assert_array_equal(infos[0]["applied_action"][:3], 0.0)  # hold actions fill the pipe at reset
    np.testing.assert_array_equal(infos[2]["applied_action"], actions[0].astype(np.float32))
    # A robot reports the command it was sent; so does the sim, so both store the same action.
    for info, action in zip(infos, actions):
        np.testing.assert_array_equal(info["executed_action"], action.astype(np.float32))
    moved = env.target_position - start
    assert moved[0] > 0 and moved[1] == pytest.approx(0.0) and moved[2] == pytest.approx(0.0)


def test_observation_noise_perturbs_observations_only():
    env = sim.make("PickCube-v0", randomization={"enabled": True, "observation_noise_std": 0.01})
    obs, _ = env.reset(seed=4)
    error = np.abs(obs["proprio"][:3] - env.arm.ee_position)
    assert 0 < error.max() < 0.05
    clean = sim.make("PickCube-v0")
    obs, _ = clean.reset(seed=4)
    np.testing.assert_allclose(obs["proprio"][:3], clean.arm.ee_position, atol=1e-6)


def test_camera_randomization_moves_the_rendered_view():
    env = sim.make("PickCube-v0", obs_mode="pixels", image_size=48,
                   randomization={"enabled": True, "camera_position_std": 0.03})
    obs_a, _ = env.reset(seed=1)
    cam = env.model.camera("front").id
    pos_a = env.model.cam_pos[cam].copy()
    obs_b, _ = env.reset(seed=2)
    assert not np.allclose(pos_a, env.model.cam_pos[cam])
    assert not np.array_equal(obs_a["images"]["front"], obs_b["images"]["front"])
    env.close()


def test_colour_randomization_jitters_the_colour_drawn_around_the_nominal_one():
    """The table takes its colour from a material: its jittered colours must centre on that colour (a
    jitter of the geom's own default rgba would repaint it grey, which a pixel policy then learns)."""
    nominal = sim.make("PickCube-v0", obs_mode="pixels", image_size=32, cameras=("front",))
    jitter = 0.1
    env = sim.make("PickCube-v0", obs_mode="pixels", image_size=32, cameras=("front",),
                   randomization={"enabled": True, "color_jitter": jitter, "light_jitter": 0.0,
                                  "camera_position_std": 0.0, "camera_rotation_std": 0.0})
    nominal.reset(seed=0)
    table = nominal.model.geom("table").id
    brown = nominal.model.mat_rgba[nominal.model.geom_matid[table], :3]
    colours = []
    for seed in range(30):
        env.reset(seed=seed)
        colours.append(env.model.geom_rgba[table, :3].copy())
        assert np.all(np.abs(colours[-1] - brown) <= jitter + 1e-6)
    assert np.abs(np.mean(colours, axis=0) - brown).max() < 0.04
    corner = (slice(26, 32), slice(0, 6))  # table only, in the front view
    drawn = env.render_camera("front")[corner].reshape(-1, 3).mean(0)
    reference = nominal.render_camera("front")[corner].reshape(-1, 3).mean(0)
    assert np.abs(drawn - reference).max() < 255 * (jitter + 0.05)
    assert reference[0] > reference[2] + 20  # the nominal table is brown, not grey
    nominal.close(), env.close()


def test_physics_and_control_rates():
    env = sim.make("PickCube-v0")
    assert env.model.opt.timestep == pytest.approx(1 / 500)
    assert env.config.substeps == 50 and env.arm.substeps_per_update == 5
    env.reset(seed=0)
    t0 = env.data.time
    env.step(np.zeros(4))
    assert env.data.time - t0 == pytest.approx(0.1)
    with pytest.raises(ValueError, match="relinearize_hz"):
        sim.make("PickCube-v0", relinearize_hz=5.0)
    assert mujoco.mj_version() > 0
