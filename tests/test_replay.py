"""Replay buffer: frames stored once, termination vs truncation, wrap-around, atomic save/load."""

import numpy as np
import pytest

from robot_rl.replay import Batch, ObsSpec, ReplayBuffer, flatten_obs


def _obs(t: float, image: bool = True) -> dict:
    obs = {"proprio": np.full(3, t, np.float32)}
    if image:
        obs["images"] = {"front": np.full((8, 8, 3), int(t) % 256, np.uint8)}
    return obs


def _buffer(capacity=100, image=True) -> ReplayBuffer:
    return ReplayBuffer(capacity, ObsSpec.from_obs(_obs(0, image)), action_dim=2)


def _episode(buf, start, steps, terminated, truncated=False):
    image = "images/front" in buf.obs_spec.shapes
    buf.add_episode([_obs(start + t, image) for t in range(steps + 1)],
                    [np.full(2, start + t, np.float32) for t in range(steps)],
                    [float(start + t) for t in range(steps)], terminated, truncated)


def test_next_obs_is_the_following_frame_and_images_stay_uint8():
    buf = _buffer()
    _episode(buf, 0, 5, terminated=True)
    batch = buf.sample(64, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.next_obs["proprio"][:, 0], batch.obs["proprio"][:, 0] + 1)
    np.testing.assert_array_equal(batch.action[:, 0], batch.obs["proprio"][:, 0])
    assert batch.obs["images/front"].dtype == np.uint8
    assert buf.frames_written == 6 and buf.transitions_written == 5  # T+1 frames, not 2T


def test_only_termination_masks_the_bootstrap():
    buf = _buffer()
    _episode(buf, 0, 3, terminated=True)
    _episode(buf, 10, 3, terminated=False, truncated=True)
    batch = buf.sample(500, np.random.default_rng(1))
    t = batch.obs["proprio"][:, 0]
    assert np.all(batch.discount[t == 2] == 0.0)  # last step of the terminated episode
    assert np.all(batch.discount[t == 12] == 1.0)  # last step of the truncated episode bootstraps
    assert np.all(batch.discount[(t != 2)] == 1.0)


def test_episodes_do_not_leak_into_each_other():
    buf = _buffer()
    _episode(buf, 0, 3, terminated=False, truncated=True)
    _episode(buf, 100, 3, terminated=True)
    batch = buf.sample(500, np.random.default_rng(2))
    assert not np.any((batch.obs["proprio"][:, 0] == 2) & (batch.next_obs["proprio"][:, 0] == 100))


def test_wrap_around_never_returns_overwritten_frames():
    buf = _buffer(capacity=10)
    for e in range(7):
        _episode(buf, 1000 * e, 4, terminated=bool(e % 2))
    assert 0 < len(buf) <= 10
    batch = buf.sample(1000, np.random.default_rng(3))
    np.testing.assert_array_equal(batch.next_obs["proprio"][:, 0], batch.obs["proprio"][:, 0] + 1)
    assert batch.obs["proprio"][:, 0].min() >= 5000  # only the newest episodes survive


def test_bad_shapes_and_order_are_clear_errors():
    buf = _buffer()
    with pytest.raises(RuntimeError, match="start_episode"):
        buf.add(np.zeros(2), 0.0, _obs(1), False, False)
    buf.start_episode(_obs(0))
    with pytest.raises(ValueError, match="action"):
        buf.add(np.zeros(3), 0.0, _obs(1), False, False)
    bad = _obs(1)
    bad["images"]["front"] = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="images/front"):
        buf.add(np.zeros(2), 0.0, bad, False, False)
    with pytest.raises(ValueError, match="keys"):
        buf.add(np.zeros(2), 0.0, {"proprio": np.zeros(3, np.float32)}, False, False)


def test_save_load_round_trip_and_corruption(tmp_path):
    buf = _buffer()
    _episode(buf, 0, 6, terminated=True)
    buf.start_episode(_obs(50))
    buf.add(np.ones(2), 1.0, _obs(51), False, False)  # an episode still open
    path = tmp_path / "buf.npz"
    buf.save(path)
    loaded = ReplayBuffer.load(path)
    a, b = buf.sample(32, np.random.default_rng(4)), loaded.sample(32, np.random.default_rng(4))
    for key in a.obs:
        np.testing.assert_array_equal(a.obs[key], b.obs[key])
    np.testing.assert_array_equal(a.discount, b.discount)
    loaded.add(np.ones(2), 1.0, _obs(52), True, False)  # the open episode continues after loading
    assert loaded.transitions_written == buf.transitions_written + 1
    assert not list(tmp_path.glob("*.tmp"))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupted"):
        ReplayBuffer.load(path)


def test_uint8_frames_cost_a_quarter_of_float_obs_and_next_obs():
    buf = ReplayBuffer(1000, ObsSpec({"images/front": (128, 128, 3), "images/wrist": (128, 128, 3)},
                                     {"images/front": "uint8", "images/wrist": "uint8"}), 4)
    per_transition = buf.nbytes() / 1000
    float_obs_and_next = 2 * 2 * 128 * 128 * 3 * 4
    assert per_transition * 4 <= float_obs_and_next


def test_batch_concat_and_flatten():
    flat = flatten_obs(_obs(3))
    assert set(flat) == {"proprio", "images/front"}
    buf = _buffer()
    _episode(buf, 0, 4, terminated=True)
    a = buf.sample(3, np.random.default_rng(0))
    both = Batch.concat(a, a)
    assert both.action.shape == (6, 2) and both.obs["images/front"].shape == (6, 8, 8, 3)


def test_n_step_returns_stop_at_episode_ends():
    buf = _buffer(image=False)
    _episode(buf, 0, 4, terminated=True)  # rewards 0, 1, 2, 3; terminal after t=3
    _episode(buf, 10, 3, terminated=False, truncated=True)  # rewards 10, 11, 12
    gamma = 0.5
    batch = buf.sample(400, np.random.default_rng(5), n_step=3, gamma=gamma)
    for t0, r, nxt, disc in zip(batch.obs["proprio"][:, 0], batch.reward, batch.next_obs["proprio"][:, 0],
                                batch.discount):
        if t0 == 0:
            assert (r, nxt, disc) == (0 + 0.5 * 1 + 0.25 * 2, 3, 0.25)
        if t0 == 2:  # two steps left, then termination: no bootstrap
            assert (r, nxt, disc) == (2 + 0.5 * 3, 4, 0.0)
        if t0 == 11:  # truncated after 12: bootstrap from the last observation
            assert (r, nxt, disc) == (11 + 0.5 * 12, 13, 0.5)
        if t0 == 10:
            assert (r, nxt, disc) == (10 + 0.5 * 11 + 0.25 * 12, 13, 0.25)


def test_saving_a_mostly_empty_buffer_writes_only_what_is_used(tmp_path):
    big = ReplayBuffer(20_000, ObsSpec({"images/front": (64, 64, 3)}, {"images/front": "uint8"}), 2)
    big.add_episode([{"images": {"front": np.full((64, 64, 3), t, np.uint8)}} for t in range(4)],
                    [np.zeros(2, np.float32)] * 3, [0.0] * 3, terminated=True, truncated=False)
    big.save(tmp_path / "big.npz")
    assert (tmp_path / "big.npz").stat().st_size < 200_000  # not 20,000 x 12 KB of zeros
    loaded = ReplayBuffer.load(tmp_path / "big.npz")
    assert loaded.capacity == 20_000 and len(loaded) == 3
    batch = loaded.sample(16, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.next_obs["images/front"][:, 0, 0, 0], batch.obs["images/front"][:, 0, 0, 0] + 1)


def test_returns_to_go_by_hand():
    buf = _buffer(image=False)
    _episode(buf, 0, 3, terminated=True)  # rewards 0, 1, 2 then terminal
    _episode(buf, 10, 2, terminated=False, truncated=True)  # rewards 10, 11, then the time limit
    g = 0.5
    rtg = buf.returns_to_go(g)
    np.testing.assert_allclose(rtg[:3], [0 + g * 1 + g * g * 2, 1 + g * 2, 2])
    # Truncated: the last reward continues forever, 11 / (1 - g) = 22.
    np.testing.assert_allclose(rtg[3:5], [10 + g * 22, 22])
    batch = buf.sample(32, np.random.default_rng(0), returns_to_go=rtg)
    first = batch.obs["proprio"][:, 0]
    expected = {0: 1.0, 1: 2.0, 2: 2.0, 10: 21.0, 11: 22.0}
    np.testing.assert_allclose(batch.mc_return, [expected[int(t)] for t in first])
    assert buf.sample(4, np.random.default_rng(0)).mc_return is None
