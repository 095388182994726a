"""Episode storage (robot_rl.episodes), dataset operations (robot_rl.datasets) and `robot-rl dataset`:
real files in tmp_path, real MuJoCo where an env is needed."""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import robot_rl.episodes as episodes_mod
from robot_rl import dataset_cli
from robot_rl.datasets import inspect_episode, list_episodes, merge, render, split
from robot_rl.episode_replay import load_replay_buffer
from robot_rl.lerobot_export import export_lerobot
from robot_rl.recording import EpisodeRecorder
from robot_rl.episodes import (
    Episode,
    episode_files,
    load_episode,
    save_episode,
)

ROOT = Path(__file__).resolve().parent.parent


def _episode(steps=5, cameras=("front", "wrist"), size=8, task="PickCube-v0", actor_id="robot1", seed=0,
             state=True, created=None, **fields) -> Episode:
    """A synthetic episode whose every frame and step differ (proprio[t, 0] == t); the same arguments
    give the same episode (id and creation time included)."""
    rng = np.random.default_rng(seed)
    obs = {"proprio": np.concatenate([np.arange(steps + 1, dtype=np.float32)[:, None],
                                      rng.normal(size=(steps + 1, 12)).astype(np.float32)], axis=1)}
    if state:
        obs["object"] = rng.normal(size=(steps + 1, 10)).astype(np.float32)
    for i, cam in enumerate(cameras):
        images = rng.integers(0, 256, (steps + 1, size, size, 3), dtype=np.uint8)
        images[:, 0, 0, 0] = np.arange(steps + 1) * 10 + i  # distinct frames
        obs[f"images/{cam}"] = images
    terminated = np.zeros(steps, bool)
    terminated[-1] = True
    intervened = np.zeros(steps, bool)
    intervened[1:3] = True
    values = {
        "task": task, "observations": obs,
        "action": rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
        "reward": rng.normal(size=steps).astype(np.float32),
        "terminated": terminated, "truncated": np.zeros(steps, bool), "intervened": intervened,
        "gripper_toggled": np.arange(steps) % 3 == 0,
        "timestamp": 1.7e9 + seed + np.arange(steps + 1, dtype=np.float64) * 0.1,
        "reward_source": (np.arange(steps) % 2).astype(np.uint8), "reward_sources": ["sim", "human"],
        "actor_id": actor_id, "seed": seed, "success": True, "episode_id": rng.bytes(16).hex(),
        "created": created or f"2025-01-01T00:00:00.{seed:06d}+00:00",
    }
    values.update(fields)
    return Episode(**values)


def _assert_same(a: Episode, b: Episode) -> None:
    assert set(a.observations) == set(b.observations)
    for key in a.observations:
        assert a.observations[key].dtype == b.observations[key].dtype
        np.testing.assert_array_equal(a.observations[key], b.observations[key])
    for name in ("action", "policy_action", "reward", "terminated", "truncated", "intervened",
                 "gripper_toggled", "timestamp", "reward_source"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
            continue
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.metadata() == b.metadata()


# -- format ----------------------------------------------------------------------------------------------
def test_round_trip_is_exact_for_every_field(tmp_path):
    episode = _episode(steps=6, policy_action=np.full((6, 4), 0.25, np.float32), policy_version="ckpt-42",
                       robot_profile="franka_lab1", operator_label="failure", success=False)
    episode.observations["privileged"] = np.arange(7 * 10, dtype=np.float32).reshape(7, 10)
    episode.extra = {"operator": "ana", "notes": ["slipped"], "nested": {"k": 1.5}}
    path = save_episode(episode, tmp_path)
    loaded = load_episode(path)
    _assert_same(episode, loaded)
    assert loaded.sources() == ["sim", "human", "sim", "human", "sim", "human"]
    # Inspectable with plain numpy, no pickle: documented keys, metadata as JSON bytes.
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"proprio", "object", "privileged", "images/front", "images/wrist",
                                   "action", "policy_action", "reward", "terminated", "truncated",
                                   "intervened", "gripper_toggled", "timestamp", "reward_source", "meta"}
        meta = json.loads(bytes(data["meta"]).decode())
    assert meta["format_version"] == 1 and meta["length"] == 6 and meta["action_dim"] == 4
    assert meta["observations"]["images/front"] == {"shape": [8, 8, 3], "dtype": "uint8"}
    assert meta["reward_sources"] == ["sim", "human"] and meta["operator_label"] == "failure"
    assert path.name.endswith(f"_robot1_{episode.episode_id[:8]}.npz")
    # Uncompressed: the file is the raw arrays plus small headers.
    raw = sum(v.nbytes for v in episode.to_arrays().values())
    assert raw < path.stat().st_size < raw + 8192


def test_file_names_sort_by_time_and_nothing_is_overwritten(tmp_path):
    late = _episode(created="2025-03-01T10:00:00.000002+00:00", seed=1)
    early = _episode(created="2025-03-01T11:00:00.000001+01:00", seed=2)  # 10:00:00.000001 UTC
    paths = [save_episode(late, tmp_path), save_episode(early, tmp_path)]
    assert episode_files(tmp_path) == [paths[1], paths[0]]
    assert paths[1].name.startswith("20250301T100000.000001Z_robot1_")
    with pytest.raises(FileExistsError, match="never overwritten"):
        save_episode(late, tmp_path)
    _assert_same(late, load_episode(paths[0]))


def test_a_crash_mid_write_leaves_no_partial_file_and_earlier_episodes_intact(tmp_path, monkeypatch):
    first = save_episode(_episode(seed=1), tmp_path)
    before = first.read_bytes()

    def crash(f, arrays):
        f.write(b"PK\x03\x04 half an episode")
        raise OSError("simulated crash: disk full")

    monkeypatch.setattr(episodes_mod, "_write_npz", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_episode(_episode(seed=2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no partial file, no temp file
    assert first.read_bytes() == before
    _assert_same(_episode(seed=1), load_episode(first))


def _set(name, value):
    def mutate(ep):
        setattr(ep, name, value(ep) if callable(value) else value)
    return mutate


def _set_obs(key, value):
    def mutate(ep):
        ep.observations[key] = value(ep.observations[key])
    return mutate


@pytest.mark.parametrize("mutate, message", [
    (_set("reward", lambda ep: ep.reward[:-1]), r"Episode\.reward: shape must be \(5,\)"),
    (_set("terminated", lambda ep: np.array([False, True, False, False, True])),
     r"Episode\.terminated: only the last step may be terminated, but step\(s\) \[1\]"),
    (_set("terminated", lambda ep: np.zeros(5, bool)), r"Episode\.terminated: the last step must end"),
    (_set_obs("images/front", lambda im: im.astype(np.float32) / 255),
     r"Episode\.observations\['images/front'\]: images must be uint8"),
    (_set_obs("proprio", lambda p: p[:-1]), r"Episode\.observations\['proprio'\]: must hold T\+1=6 frames"),
    (_set("action", lambda ep: np.where(np.arange(4) == 2, np.nan, ep.action).astype(np.float32)),
     r"Episode\.action: has non-finite values"),
    (_set("action", lambda ep: ep.action.astype(np.float64)), r"Episode\.action: dtype must be float32"),
    (_set("timestamp", lambda ep: ep.timestamp[::-1].copy()), r"Episode\.timestamp: must not decrease"),
    (_set("reward_source", lambda ep: np.full(5, 7, np.uint8)), r"Episode\.reward_source: codes must index"),
    (_set("actor_id", "robot 1/../x"), r"Episode\.actor_id"),
    (_set("operator_label", "maybe"), r"Episode\.operator_label"),
    (_set("success", np.True_), r"Episode\.success"),
    (_set("extra", {"when": time}), r"Episode\.extra: must be JSON-serialisable"),
    (_set("policy_action", lambda ep: ep.action[:, :2]), r"Episode\.policy_action: shape must be \(5, 4\)"),
])
def test_validation_names_the_field(mutate, message, tmp_path):
    episode = _episode()
    episode.validate()
    mutate(episode)
    with pytest.raises(ValueError, match=message):
        save_episode(episode, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_truncated_and_foreign_files_give_a_clear_error_naming_the_path(tmp_path):
    good = save_episode(_episode(size=32), tmp_path / "src")
    data = good.read_bytes()
    third = len(data) // 3
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "empty.npz": b"",
        "text.npz": b"not an episode\n",
        "bitflip.npz": data[:third] + bytes([data[third] ^ 0xFF]) + data[third + 1:],  # inside an image
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    np.save(tmp_path / "lone.npy", np.zeros(3))
    (tmp_path / "lone.npy").rename(tmp_path / "lone.npz")
    for path in sorted(tmp_path.glob("*.npz")):
        with pytest.raises(ValueError, match="is unreadable, truncated or not a robot_rl episode") as err:
            load_episode(path)
        assert str(path) in str(err.value), path.name
    with pytest.raises(ValueError, match="no 'meta' key"):
        load_episode(tmp_path / "foreign.npz")
    with pytest.raises(ValueError, match="CRC"):
        load_episode(tmp_path / "bitflip.npz")


# -- recorder (real simulator) ---------------------------------------------------------------------------
def test_recorder_records_a_real_sim_episode_with_interventions(tmp_path):
    import sim
    from sim.experts import expert_for

    env = sim.make("PickCube-v0", episode_steps=12)
    expert = expert_for("PickCube-v0", env)
    rng = np.random.default_rng(0)
    recorder = EpisodeRecorder(tmp_path, task="PickCube-v0", actor_id="actor-3", policy_version=7)
    obs, _ = env.reset(seed=3)
    expert.reset()
    recorder.start(obs, seed=3, extra={"run": "test"})
    first_obs = {k: v.copy() for k, v in obs.items()}
    proposed, executed, flags, toggles = [], [], [], []
    path = None
    for t in range(20):
        policy = rng.uniform(-1, 1, 4).astype(np.float32)
        human = t in (2, 3, 4)  # the operator takes over with the expert's action
        action = expert.act(obs) if human else policy
        obs, reward, terminated, truncated, info = env.step(action)
        path = recorder.step(policy, reward, obs, terminated, truncated,
                             {**info, "intervened": human, "reward_source": "human" if human else "sim"})
        proposed.append(policy)
        executed.append(info["executed_action"])
        flags.append(human)
        toggles.append(info["gripper_toggled"])
        if terminated or truncated:
            break
    assert path is not None and not recorder.active
    episode = load_episode(path)
    assert episode.length == len(executed) == 12 and episode.truncated[-1] and not episode.terminated.any()
    np.testing.assert_array_equal(episode.action, np.stack(executed))
    np.testing.assert_array_equal(episode.policy_action, np.stack(proposed))
    np.testing.assert_array_equal(episode.intervened, flags)
    np.testing.assert_array_equal(episode.gripper_toggled, toggles)
    assert episode.sources()[2:5] == ["human"] * 3 and episode.sources()[0] == "sim"
    np.testing.assert_array_equal(episode.observations["proprio"][0], first_obs["proprio"])
    np.testing.assert_array_equal(episode.observations["object"][-1], obs["object"])
    assert np.all(np.diff(episode.timestamp) >= 0) and abs(episode.timestamp[0] - time.time()) < 60
    assert episode.success is False and episode.seed == 3 and episode.policy_version == 7
    assert episode.extra == {"run": "test"} and episode.actor_id == "actor-3"

    # abort discards; misuse is refused without breaking the recorder
    with pytest.raises(RuntimeError, match="before start"):
        recorder.step(policy, 0.0, obs, False, False)
    obs, _ = env.reset(seed=4)
    recorder.start(obs)
    with pytest.raises(RuntimeError, match="still open"):
        recorder.start(obs)
    with pytest.raises(ValueError, match="reward is nan"):
        recorder.step(policy, float("nan"), obs, False, False)
    with pytest.raises(ValueError, match="action has shape"):
        recorder.step(np.zeros(3), 0.0, obs, False, False)
    with pytest.raises(ValueError, match="observation 'proprio' has non-finite values"):
        recorder.step(policy, 0.0, {**obs, "proprio": np.full(13, np.nan, np.float32)}, False, False)
    assert recorder.steps == 0
    recorder.step(policy, 0.0, env.step(policy)[0], False, False)
    recorder.abort()
    assert not recorder.active and episode_files(tmp_path) == [path]
    # keep_failures=False (demo recording) discards an episode that ends without success
    demo = EpisodeRecorder(tmp_path, task="PickCube-v0", keep_failures=False)
    demo.start(obs)
    assert demo.step(policy, 0.0, obs, False, True, {"success": False}) is None
    assert demo.last_episode is not None and episode_files(tmp_path) == [path]
    env.close()


def test_a_directory_of_episodes_feeds_a_replay_buffer(tmp_path):
    saved = [_episode(steps=4 + seed, seed=seed, cameras=("front",)) for seed in range(3)]
    saved.append(_episode(steps=3, seed=9, cameras=("front",), success=None))
    for episode in saved:
        save_episode(episode, tmp_path)
    buffer = load_replay_buffer(tmp_path)
    assert len(buffer) == 4 + 5 + 6 + 3 and buffer.frames_written == 18 + 4
    batch = buffer.sample(256, np.random.default_rng(0))
    # the next observation is the following frame of the same episode (proprio[:, 0] counts frames)
    np.testing.assert_array_equal(batch.next_obs["proprio"][:, 0], batch.obs["proprio"][:, 0] + 1)
    assert batch.obs["images/front"].dtype == np.uint8
    assert batch.intervened.any() and not batch.intervened.all()
    assert batch.gripper_toggled.any()
    # every episode terminates: no bootstrap exactly where next_obs is an episode's final observation
    finals = [ep.observations["proprio"][-1, 1] for ep in saved]
    np.testing.assert_array_equal(batch.discount == 0, np.isin(batch.next_obs["proprio"][:, 1], finals))
    assert len(load_replay_buffer(tmp_path, success_only=True)) == 15
    with pytest.raises(ValueError, match="is of task 'PickCube-v0', not 'PegInsertion-v0'"):
        load_replay_buffer(tmp_path, task="PegInsertion-v0")


# -- dataset operations ----------------------------------------------------------------------------------
def test_list_and_inspect(tmp_path):
    a = save_episode(_episode(steps=5, seed=1, success=True), tmp_path)
    save_episode(_episode(steps=3, seed=2, success=None, actor_id="robot2", operator_label="success"),
                 tmp_path)
    rows = list_episodes(tmp_path)
    assert [r["length"] for r in rows] == [5, 3] and rows[0]["file"] == a.name
    assert rows[0]["interventions"] == 2 and rows[1]["actor_id"] == "robot2"
    assert rows[0]["success"] is True and rows[1]["success"] is None
    assert rows[1]["operator_label"] == "success"
    assert rows[0]["reward_sum"] == pytest.approx(float(_episode(steps=5, seed=1).reward.sum()), rel=1e-6)
    info = inspect_episode(a)
    assert info["arrays"]["images/front"] == {**info["arrays"]["images/front"], "shape": [6, 8, 8, 3],
                                              "dtype": "uint8"}
    assert info["arrays"]["action"]["per_dim"]["mean"] == pytest.approx(
        _episode(steps=5, seed=1).action.mean(0), abs=1e-5)
    assert info["arrays"]["intervened"]["true"] == 2
    assert info["summary"]["reward_sources"] == {"sim": 3, "human": 2}
    assert info["summary"]["duration_s"] == pytest.approx(0.5) and info["meta"]["seed"] == 1
    with pytest.raises(ValueError, match="does not exist"):
        list_episodes(tmp_path / "nope")


def test_merge_refuses_mixed_tasks_and_specs_and_skips_duplicates(tmp_path):
    src_a, src_b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "all"
    a1 = save_episode(_episode(seed=1), src_a)
    save_episode(_episode(seed=2), src_a)
    save_episode(_episode(seed=3, actor_id="robot2"), src_b)
    (src_b / a1.name).write_bytes(a1.read_bytes())  # the same episode collected twice
    assert merge([src_a, src_b], dest) == {"copied": 3, "duplicates": 1}
    assert len(episode_files(dest)) == 3
    assert merge([src_a, src_b], dest) == {"copied": 0, "duplicates": 4}
    _assert_same(load_episode(a1), load_episode(dest / a1.name))

    other_task = tmp_path / "peg"
    save_episode(_episode(seed=4, task="PegInsertion-v0"), other_task)
    with pytest.raises(ValueError, match="refusing to mix tasks"):
        merge([other_task], dest)
    other_spec = tmp_path / "pixels64"
    save_episode(_episode(seed=5, size=16), other_spec)
    with pytest.raises(ValueError, match=r"mix observation specs: .*images/front uint8\[16, 16, 3\]"):
        merge([src_a, other_spec], tmp_path / "new")
    assert len(episode_files(dest)) == 3 and not (tmp_path / "new").exists()  # refused before copying


def test_split_is_by_episode_and_deterministic(tmp_path):
    src = tmp_path / "src"
    names = {save_episode(_episode(steps=2, seed=s, cameras=()), src).name for s in range(10)}
    first = split(src, tmp_path / "a1", tmp_path / "b1", fraction=0.8, seed=0)
    again = split(src, tmp_path / "a2", tmp_path / "b2", fraction=0.8, seed=0)
    other = split(src, tmp_path / "a3", tmp_path / "b3", fraction=0.8, seed=1)
    assert first == again and first != other
    assert len(first["a"]) == 8 and len(first["b"]) == 2
    assert set(first["a"]) | set(first["b"]) == names and not set(first["a"]) & set(first["b"])
    assert {p.name for p in episode_files(tmp_path / "b1")} == set(first["b"])
    with pytest.raises(FileExistsError, match="not overwriting"):
        split(src, tmp_path / "a1", tmp_path / "b9", fraction=0.8, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        split(src, tmp_path / "x", tmp_path / "y", fraction=1.5)


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_render_mp4_and_gif_decode_with_every_frame(tmp_path):
    path = save_episode(_episode(steps=6, size=16), tmp_path / "eps")
    frames = _video_frames(render(path, tmp_path / "both.mp4", fps=5))
    assert len(frames) == 7 and frames[0].shape == (16, 32, 3)  # T+1 frames, two cameras side by side
    frames = _video_frames(render(path, tmp_path / "wrist.mp4", camera="wrist"))
    assert len(frames) == 7 and frames[0].shape == (16, 16, 3)
    with Image.open(render(path, tmp_path / "front.gif", camera="front", fps=10)) as gif:
        assert gif.n_frames == 7 and gif.size == (16, 16)
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        assert sum(durations) == 700
    odd = save_episode(_episode(steps=2, size=15, seed=1), tmp_path / "eps")
    assert _video_frames(render(odd, tmp_path / "odd.mp4", camera="front"))[0].shape == (16, 16, 3)

    state_only = save_episode(_episode(steps=2, cameras=(), seed=2), tmp_path / "eps")
    with pytest.raises(ValueError, match="has no images"):
        render(state_only, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"has no camera 'top'; it has \['front', 'wrist'\]"):
        render(path, tmp_path / "x.mp4", camera="top")
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        render(path, tmp_path / "x.avi")
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".*partial*"))


def test_export_lerobot_v21_layout(tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "eps"
    lengths = [5, 7]
    for seed, steps in enumerate(lengths):
        save_episode(_episode(steps=steps, seed=seed, size=16,
                              extra={"action_names": ["dx", "dy", "dz", "gripper"]}), src)
    dest = tmp_path / "lerobot"
    result = export_lerobot(src, dest, fps=10)
    assert result["episodes"] == 2 and result["frames"] == sum(lengths)

    info = json.loads((dest / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["fps"] == 10
    assert info["total_episodes"] == 2 and info["total_frames"] == 12 and info["total_tasks"] == 1
    assert info["total_videos"] == 4 and info["chunks_size"] == 1000 and info["splits"] == {"train": "0:2"}
    features = info["features"]
    assert features["observation.state"]["shape"] == [13] and features["action"]["names"][3] == "gripper"
    assert features["observation.images.front"]["dtype"] == "video"
    assert features["observation.images.front"]["shape"] == [16, 16, 3]
    columns = {k for k, v in features.items() if v["dtype"] != "video"}
    assert {"observation.state", "observation.environment_state", "action", "next.reward", "next.done",
            "episode_index", "frame_index", "timestamp", "index", "task_index",
            "complementary_info.intervened"} <= columns

    index = 0
    for episode_index, steps in enumerate(lengths):
        chunk = episode_index // info["chunks_size"]
        data_path = info["data_path"].format(episode_chunk=chunk, episode_index=episode_index)
        table = pq.read_table(dest / data_path)
        assert table.num_rows == steps and set(table.column_names) == columns
        rows = table.to_pydict()
        assert rows["frame_index"] == list(range(steps))
        assert rows["index"] == list(range(index, index + steps))
        assert set(rows["episode_index"]) == {episode_index}
        assert rows["timestamp"] == pytest.approx([t / 10 for t in range(steps)])
        assert rows["next.done"] == [False] * (steps - 1) + [True]
        assert rows["complementary_info.intervened"][1:3] == [True, True]
        original = load_episode(episode_files(src)[episode_index])
        np.testing.assert_array_equal(np.array(rows["observation.state"], np.float32),
                                      original.observations["proprio"][:steps])
        np.testing.assert_array_equal(np.array(rows["action"], np.float32), original.action)
        for camera in ("front", "wrist"):
            video = dest / info["video_path"].format(episode_chunk=chunk, episode_index=episode_index,
                                                     video_key=f"observation.images.{camera}")
            frames = _video_frames(video)
            assert len(frames) == steps and frames[0].shape == (16, 16, 3)
        index += steps

    episodes = [json.loads(line) for line in (dest / "meta/episodes.jsonl").read_text().splitlines()]
    assert episodes == [{"episode_index": i, "tasks": ["PickCube-v0"], "length": n}
                        for i, n in enumerate(lengths)]
    assert (dest / "meta/tasks.jsonl").read_text() == '{"task_index": 0, "task": "PickCube-v0"}\n'
    for line in (dest / "meta/episodes_stats.jsonl").read_text().splitlines():
        stats = json.loads(line)["stats"]
        assert set(stats) == set(features)
        for key, feature_stats in stats.items():  # LeRobot's aggregate_stats checks these shapes
            assert np.array(feature_stats["count"]).shape == (1,)
            expected = (3, 1, 1) if "image" in key else tuple(features[key]["shape"])
            for name in ("min", "max", "mean", "std"):
                assert np.array(feature_stats[name]).shape == expected, (key, name)

    with pytest.raises(FileExistsError, match="not overwriting"):
        export_lerobot(src, dest)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install robot_rl\[data\]"):
        export_lerobot(src, tmp_path / "other")


# -- CLI -------------------------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "robot_rl.dataset_cli", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_cli_list_and_bad_input(tmp_path):
    paths = [save_episode(_episode(seed=s, cameras=()), tmp_path) for s in range(2)]
    out = _cli("list", tmp_path)
    assert out.returncode == 0, out.stderr
    assert all(p.name in out.stdout for p in paths) and "2 episodes, 10 steps" in out.stdout
    for bad in (("list", tmp_path / "missing"), ("inspect", tmp_path / "missing.npz")):
        out = _cli(*bad)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "missing" in out.stderr


def test_every_dataset_command_runs_in_process_and_hooks_into_a_parent_cli(tmp_path, capsys):
    import argparse

    src = tmp_path / "src"
    first = save_episode(_episode(seed=1, size=16), src)
    save_episode(_episode(seed=2, size=16), src)
    main = dataset_cli.main
    assert main(["inspect", str(first), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meta"]["episode_id"] == _episode(seed=1, size=16).episode_id
    assert main(["inspect", str(first)]) == 0 and "images/front" in capsys.readouterr().out
    assert main(["merge", str(src), "--out", str(tmp_path / "merged")]) == 0
    assert main(["split", str(src), "--out-a", str(tmp_path / "a"), "--out-b", str(tmp_path / "b"),
                 "--fraction", "0.5", "--seed", "3"]) == 0
    assert len(episode_files(tmp_path / "a")) == len(episode_files(tmp_path / "b")) == 1
    assert main(["render", str(first), "--out", str(tmp_path / "r.gif"), "--camera", "front"]) == 0
    assert main(["export-lerobot", str(src), "--out", str(tmp_path / "lr"), "--fps", "10"]) == 0
    assert (tmp_path / "lr/meta/info.json").exists()
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "none"), "--out", str(tmp_path / "m2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["split", str(src), "--out-a", "x", "--out-b", "y", "--fraction", "2"])
    assert exit_info.value.code == 2 and "must be in [0, 1]" in capsys.readouterr().err

    parent = argparse.ArgumentParser(prog="robot-rl")
    dataset_cli.add_dataset_parser(parent.add_subparsers(dest="command", required=True))
    args = parent.parse_args(["dataset", "list", str(src), "--json"])
    assert args.func(args) == 0 and len(json.loads(capsys.readouterr().out)) == 2


def test_record_demos_command_feeds_replay_render_and_export(tmp_path, capsys):
    out = tmp_path / "demos"
    code = dataset_cli.main(["record-demos", "--task", "PickCube-v0", "--episodes", "2", "--out", str(out),
                             "--obs-mode", "pixels", "--image-size", "32", "--seed", "5"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["recorded"] == 2
    files = episode_files(out)
    assert len(files) == 2
    for path in files:
        episode = load_episode(path)
        assert episode.success is True and episode.terminated[-1]
        assert episode.sources() == ["sim"] * episode.length
        assert episode.observations["images/front"].shape == (episode.length + 1, 32, 32, 3)
        assert episode.extra["action_names"] == ["dx", "dy", "dz", "gripper"] and episode.actor_id == "expert"
    assert episode.seed in (5, 6)
    assert len(load_replay_buffer(out)) == sum(load_episode(p).length for p in files)
    steps = load_episode(files[0]).length
    assert len(_video_frames(render(files[0], tmp_path / "demo.mp4"))) == steps + 1
    export_lerobot(out, tmp_path / "lerobot")
    video = tmp_path / "lerobot/videos/chunk-000/observation.images.wrist/episode_000000.mp4"
    assert len(_video_frames(video)) == steps
    code = dataset_cli.main(["record-demos", "--episodes", "0", "--out", str(out)])
    assert code == 2 and "--episodes must be >= 1" in capsys.readouterr().err
