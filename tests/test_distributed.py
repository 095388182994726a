"""Actors and a learner in separate processes over real ZeroMQ sockets: episodes arrive exactly once
across a learner that starts late, a learner that crashes and resumes, and an actor that dies."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.distributed import Learner, config_hash
from robot_rl.episodes import Episode
from robot_rl.replay import ObsSpec
from robot_rl.train import TrainConfig

TINY = {"env": {"id": "PickCube-v0"}, "num_demos": 2, "learning_starts": 50, "eval_every": 200, "eval_episodes": 1,
        "checkpoint_every": 100, "progress": False, "tensorboard": False,
        "agent": {"hidden_dims": (32, 32), "batch_size": 32, "utd": 1}}


_processes: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """A failed test must not leave actors or learners running (and eating CPU and memory) under the
    rest of the suite."""
    yield
    while _processes:
        proc = _processes.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _free_ports(n=2) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cfg(out: Path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "out_dir": str(out), **overrides})


def _set_args(values: dict) -> list[str]:
    flat = []
    for key, value in values.items():
        if isinstance(value, dict):
            flat += [f"{key}.{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in value.items()]
        else:
            flat.append(f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
    return flat


def _actor(ports, actor_id: str, spool: Path, episodes: int | None, flush_s=10.0, episodes_dir=None,
           **overrides) -> subprocess.Popen:
    values = {k: v for k, v in {**TINY, **overrides}.items() if k in ("env", "agent", "seed", "human")}
    cmd = [sys.executable, "-m", "robot_rl.cli", "actor", "--actor-id", actor_id, "--flush-s", str(flush_s),
           "--data-port", str(ports[0]), "--weights-port", str(ports[1]), "--spool", str(spool),
           "--set", *_set_args(values)]
    if episodes is not None:
        cmd += ["--episodes", str(episodes)]
    if episodes_dir is not None:
        cmd += ["--episodes-dir", str(episodes_dir)]
    _processes.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "OMP_NUM_THREADS": "1"}))
    return _processes[-1]


def _finish(proc: subprocess.Popen, timeout=120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _episode(spec: ObsSpec, steps: int, action_dim: int, shapes: dict | None = None) -> Episode:
    shapes = {**spec.shapes, **(shapes or {})}
    return Episode(task="PickCube-v0", observations={k: np.zeros((steps + 1, *s), spec.dtypes[k]) for k, s in shapes.items()},
                   action=np.zeros((steps, action_dim), np.float32), reward=np.zeros(steps, np.float32),
                   terminated=np.zeros(steps, bool), truncated=np.arange(steps) == steps - 1,
                   intervened=np.arange(steps) == 1, gripper_toggled=np.zeros(steps, bool),
                   timestamp=np.arange(steps + 1, dtype=np.float64), reward_source=np.zeros(steps, np.uint8))


def test_an_episode_goes_over_the_wire_as_its_file_arrays_and_is_checked_as_a_file_is():
    from robot_rl.episodes import episode_from_arrays

    spec = ObsSpec({"proprio": (3,), "images/front": (4, 4, 3)}, {"proprio": "float32", "images/front": "uint8"})
    episode = _episode(spec, 3, 2)
    episode.observations["proprio"][:, 0] = np.arange(4)
    arrays = episode.to_arrays()
    assert arrays["images/front"].dtype == np.uint8 and arrays["images/front"].shape == (4, 4, 4, 3)
    back = episode_from_arrays(arrays, "from actor a")
    assert back.truncated[-1] and not back.terminated.any() and list(back.intervened) == [False, True, False]
    assert [back.frame(t)["proprio"][0] for t in range(4)] == [0, 1, 2, 3]
    arrays["proprio"] = arrays["proprio"][:3]
    with pytest.raises(ValueError, match="episode from actor a"):
        episode_from_arrays(arrays, "from actor a")


def test_config_hash_covers_what_actors_must_share(tmp_path):
    a = _cfg(tmp_path)
    assert config_hash(a) == config_hash(_cfg(tmp_path / "elsewhere", total_env_steps=5))
    assert config_hash(a) != config_hash(_cfg(tmp_path, agent={"hidden_dims": (64, 64)}))
    assert config_hash(a) != config_hash(_cfg(tmp_path, env={"id": "PegInsertion-v0"}))


def test_two_actor_processes_feed_one_learner(tmp_path):
    ports = _free_ports()
    learner = Learner(_cfg(tmp_path / "run", total_env_steps=300), f"tcp://127.0.0.1:{ports[0]}",
                      f"tcp://127.0.0.1:{ports[1]}")
    # One actor stops after 2 episodes, the other when the learner says the run is done.
    actors = [_actor(ports, "sim0", tmp_path / "spool0", episodes=2, episodes_dir=tmp_path / "episodes"),
              _actor(ports, "sim1", tmp_path / "spool1", episodes=None, seed=1)]
    try:
        result = learner.run()
    finally:
        learner.close()
    summaries = [_finish(p) for p in actors]  # they stop when the learner says it is done
    assert result["env_steps"] >= 300
    assert set(result["actor_episodes"]) == {"sim0", "sim1"}
    # UTD holds across processes: critic updates = utd x (env steps received - learning_starts + 1).
    assert learner.agent.updates == 1 * (learner.env_steps - 50 + 1)
    # Every episode a learner counted came from an actor; none counted twice.
    assert sum(result["actor_episodes"].values()) == learner.episodes
    assert sum(s["episodes"] for s in summaries) >= learner.episodes
    assert all(s["episodes"] >= 1 for s in summaries)
    # sim0 also kept its episodes on disk, in the documented format.
    from robot_rl.episodes import iter_episodes

    kept = [episode for _, episode in iter_episodes(tmp_path / "episodes")]
    # sim0 stops at 2 episodes, or sooner when sim1 alone brings the run to its steps (a slow start).
    assert 1 <= len(kept) == summaries[0]["episodes"] <= 2
    assert all(e.actor_id == "sim0" and e.task == "PickCube-v0" for e in kept)
    assert sum(e.length for e in kept) == summaries[0]["env_steps"]
    evals = (tmp_path / "run" / "eval.jsonl").read_text().splitlines()
    assert len(evals) >= 2


def test_actor_spools_while_the_learner_is_down_then_everything_arrives_once(tmp_path):
    ports = _free_ports()
    # No learner at all: the actor acts with its initial weights and keeps every episode on disk.
    summary = _finish(_actor(ports, "robot0", tmp_path / "spool", episodes=3, flush_s=0))
    assert summary["episodes"] == 3 and summary["unsent_batches"] == 3
    learner = Learner(_cfg(tmp_path / "run", total_env_steps=10_000), f"tcp://127.0.0.1:{ports[0]}",
                      f"tcp://127.0.0.1:{ports[1]}")
    try:
        late = _actor(ports, "robot0", tmp_path / "spool", episodes=1)  # the same robot, restarted
        deadline = time.monotonic() + 60
        while learner.episodes < 4 and time.monotonic() < deadline:
            learner.serve(0.5)
        learner.save()  # the checkpoint holds them: the actor may now delete its spool
        while late.poll() is None and time.monotonic() < deadline:
            learner.serve(0.2)
        late_summary = _finish(late)
    finally:
        learner.close()
    assert learner.episodes == 4 and learner.actor_episodes == {"robot0": 4}
    assert learner.env_steps == summary["env_steps"] + late_summary["env_steps"]
    assert late_summary["unsent_batches"] == 0


def test_learner_crash_and_resume_loses_and_duplicates_nothing(tmp_path):
    ports = _free_ports()
    data, weights = f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}"
    cfg = _cfg(tmp_path / "run", total_env_steps=10_000, checkpoint_every=10**9)
    first = Learner(cfg, data, weights)
    actor = _actor(ports, "robot0", tmp_path / "spool", episodes=6, flush_s=60)
    deadline = time.monotonic() + 90
    try:
        while first.episodes < 2 and time.monotonic() < deadline:
            first.serve(0.2)
        first.save()  # checkpoint: these episodes are safe
        saved_episodes, saved_steps = first.episodes, first.env_steps
        while first.episodes == saved_episodes and time.monotonic() < deadline:
            first.serve(0.2)
        assert first.episodes > saved_episodes  # received, not checkpointed...
    finally:
        first.close()  # ...then the learner dies without a checkpoint
    second = Learner(cfg, data, weights, resume=True)
    try:
        assert (second.episodes, second.env_steps) == (saved_episodes, saved_steps)
        while second.episodes < 6 and time.monotonic() < deadline:
            second.serve(0.2)
        second.save()  # now the actor's spool may empty, and it exits
        while actor.poll() is None and time.monotonic() < deadline:
            second.serve(0.2)
        summary = _finish(actor)
    finally:
        second.close()
    assert summary["episodes"] == 6 and summary["unsent_batches"] == 0
    assert second.episodes == 6 and second.env_steps == summary["env_steps"]
    assert second.actor_episodes == {"robot0": 6 - saved_episodes}


def test_a_dead_actor_is_noticed_and_learning_goes_on(tmp_path):
    ports = _free_ports()
    learner = Learner(_cfg(tmp_path / "run", total_env_steps=10_000), f"tcp://127.0.0.1:{ports[0]}",
                      f"tcp://127.0.0.1:{ports[1]}", silent_after_s=2.0)
    actor = _actor(ports, "robot0", tmp_path / "spool", episodes=None)
    try:
        deadline = time.monotonic() + 120
        while learner.episodes < 1 and time.monotonic() < deadline:
            learner.serve(0.5)
        assert "robot0" in learner.endpoint.actors()
        actor.kill()
        actor.wait()
        killed = time.monotonic()
        while "robot0" in learner.endpoint.actors() and time.monotonic() - killed < 10:
            learner.serve(0.2)
        assert "robot0" not in learner.endpoint.actors()
        assert time.monotonic() - killed < 5.0  # noticed within a few seconds
    finally:
        learner.close()


def test_eight_actor_processes(tmp_path):
    """The scale-out case simulated here: 8 actors (processes) feeding one learner."""
    ports = _free_ports()
    learner = Learner(_cfg(tmp_path / "run", total_env_steps=10_000, eval_every=10**6),
                      f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}")
    actors = [_actor(ports, f"sim{i}", tmp_path / f"spool{i}", episodes=2, seed=i) for i in range(8)]
    deadline = time.monotonic() + 180
    try:
        while learner.episodes < 16 and time.monotonic() < deadline:
            learner.serve(0.5)
        learner.save()
        while any(a.poll() is None for a in actors) and time.monotonic() < deadline:
            learner.serve(0.2)
        summaries = [_finish(a) for a in actors]
    finally:
        learner.close()
    assert learner.actor_episodes == {f"sim{i}": 2 for i in range(8)}
    assert learner.env_steps == sum(s["env_steps"] for s in summaries)
    assert all(s["unsent_batches"] == 0 for s in summaries)


def _learner_process(ports, out: Path, resume: bool, **overrides) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "robot_rl.cli", "learner", "--out", str(out), "--data-port", str(ports[0]),
           "--weights-port", str(ports[1])]
    cmd += ["--resume"] if resume else ["--set", *_set_args({**TINY, **overrides})]
    _processes.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "OMP_NUM_THREADS": "1"}))
    return _processes[-1]


def _spooled_total(spool: Path) -> int:
    """Episodes the actor ever spooled (its next sequence number - 1)."""
    return json.loads((spool / "state.json").read_text())["next_seq"] - 1


def test_kill_9_of_the_learner_process_then_resume_counts_every_episode_once(tmp_path):
    import torch

    ports = _free_ports()
    out, spool = tmp_path / "run", tmp_path / "spool"
    first = _learner_process(ports, out, resume=False, total_env_steps=10**6, checkpoint_every=100)
    actor = _actor(ports, "robot0", spool, episodes=12, flush_s=90)
    deadline = time.monotonic() + 90
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    first.kill()  # SIGKILL mid-run: no chance to save or say goodbye
    first.wait()
    second = _learner_process(ports, out, resume=True)
    try:
        summary = _finish(actor, timeout=120)  # exits once a checkpoint holds all its episodes
    finally:
        second.kill()
        second.wait()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert summary["episodes"] == 12 and summary["unsent_batches"] == 0
    assert state["episodes"] == 12 and state["env_steps"] == summary["env_steps"]
    assert state["transport"]["actors"]["robot0"]["received_seq"] == 12


def test_kill_9_of_an_actor_then_restart_resends_its_spool_exactly_once(tmp_path):
    ports = _free_ports()
    spool = tmp_path / "spool"
    learner = Learner(_cfg(tmp_path / "run", total_env_steps=10**6), f"tcp://127.0.0.1:{ports[0]}",
                      f"tcp://127.0.0.1:{ports[1]}")
    actor = _actor(ports, "robot0", spool, episodes=None)
    deadline = time.monotonic() + 90
    try:
        while learner.episodes < 2 and time.monotonic() < deadline:
            learner.serve(0.2)
        actor.kill()  # SIGKILL, mid-episode: that episode was never finished, nor sent
        actor.wait()
        restarted = _actor(ports, "robot0", spool, episodes=2)
        while learner.episodes < _spooled_total(spool) and time.monotonic() < deadline:
            learner.serve(0.2)
        learner.save()
        while restarted.poll() is None and time.monotonic() < deadline:
            learner.serve(0.2)
        summary = _finish(restarted)
    finally:
        learner.close()
    assert summary["unsent_batches"] == 0
    # Every episode the actor ever spooled (before and after the kill) arrived, and only once.
    assert learner.actor_episodes == {"robot0": _spooled_total(spool)}
    assert learner.endpoint.state_dict()["actors"]["robot0"]["received_seq"] == _spooled_total(spool)


def test_an_episode_of_the_wrong_shape_is_dropped_with_a_logged_reason(tmp_path, caplog):
    from robot_rl.transport import ActorEndpoint

    ports = _free_ports()
    cfg = _cfg(tmp_path / "run", total_env_steps=10**6)
    learner = Learner(cfg, f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}")
    good = _episode(learner.obs_spec, 2, learner.action_dim).to_arrays()
    # an actor with other observation shapes
    bad = _episode(learner.obs_spec, 2, learner.action_dim, {"proprio": (5,)}).to_arrays()
    try:
        with ActorEndpoint("odd", f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}", config_hash(cfg),
                           None) as actor:
            actor.send_transitions(bad)
            actor.send_transitions(good)
            deadline = time.monotonic() + 20
            while actor.acked_seq < 2 and time.monotonic() < deadline:
                actor.pump(10)
                learner.serve(0.05)
        assert learner.episodes == 1 and learner.env_steps == 2  # the good one, after the bad one
        assert "dropped an episode from actor odd" in caplog.text and "proprio" in caplog.text
    finally:
        learner.close()


def test_interventions_from_an_actor_reach_the_learners_demo_buffer(tmp_path):
    ports = _free_ports()
    learner = Learner(_cfg(tmp_path / "run", total_env_steps=10**6, num_demos=0), f"tcp://127.0.0.1:{ports[0]}",
                      f"tcp://127.0.0.1:{ports[1]}")
    assert learner.demos is None
    actor = _actor(ports, "robot0", tmp_path / "spool", episodes=2, human={"enabled": True},
                   episodes_dir=tmp_path / "episodes")
    deadline = time.monotonic() + 90
    try:
        while learner.episodes < 2 and time.monotonic() < deadline:
            learner.serve(0.2)
        learner.save()
        while actor.poll() is None and time.monotonic() < deadline:
            learner.serve(0.2)
        _finish(actor)
    finally:
        learner.close()
    from robot_rl.episodes import iter_episodes

    kept = [episode for _, episode in iter_episodes(tmp_path / "episodes")]
    intervened = sum(int(e.intervened.sum()) for e in kept)
    assert intervened > 0  # the random initial policy drifts: the simulated human took over
    assert learner.demos.transitions_written == intervened  # every intervened step, once
    online = learner.online.sample(500, np.random.default_rng(0))
    assert online.intervened.any()


def _post_event(console, name: str) -> None:
    import urllib.request

    request = urllib.request.Request(console.url + "api/event", data=json.dumps({"event": name}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5).read()


def test_operator_console_events_label_reset_and_pause_an_actors_episode(tmp_path):
    import threading

    from robot_rl.console import OperatorConsole
    from robot_rl.distributed import Actor
    from robot_rl.episodes import iter_episodes
    from robot_rl.transport import ActorEndpoint

    cfg = _cfg(tmp_path / "run")
    ports = _free_ports()  # no learner: the actor spools, the console still works
    endpoint = ActorEndpoint("robot0", f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}",
                             config_hash(cfg), tmp_path / "spool")
    with OperatorConsole() as console:
        actor = Actor(cfg, endpoint, "robot0", episodes_dir=tmp_path / "episodes", console=console)
        try:
            _post_event(console, "success")  # the operator says the task is done
            header = actor.run_episode()
            assert header["operator_label"] == "success" and header["length"] == 1
            _post_event(console, "reset")
            assert actor.run_episode()["length"] == 1
            _post_event(console, "pause")
            threading.Timer(0.5, _post_event, (console, "pause")).start()
            started = time.monotonic()
            paused = actor.run_episode()
            assert time.monotonic() - started >= 0.5 and not actor.paused  # held, then resumed
            assert paused["length"] == 100
            state = console.state()
            assert state["status"]["actor_id"] == "robot0" and len(state["history"]) == 3
            assert "front" in state["cameras"]  # state observations: the console renders a camera
        finally:
            actor.close()
    labels = [episode.operator_label for _, episode in iter_episodes(tmp_path / "episodes")]
    assert labels == ["success", None, None]


def test_console_takeover_latches_the_teleop_device_as_the_driver(tmp_path):
    from hardware.teleop import ScriptedDevice, TeleopConfig
    from robot_rl.console import OperatorConsole
    from robot_rl.distributed import Actor
    from robot_rl.intervention import TeleopHuman
    from robot_rl.transport import ActorEndpoint

    cfg = _cfg(tmp_path / "run")
    ports = _free_ports()
    endpoint = ActorEndpoint("robot0", f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}",
                             config_hash(cfg), tmp_path / "spool")
    device = ScriptedDevice([], TeleopConfig(use_rotation=False))  # connected, never touched
    with OperatorConsole() as console:
        actor = Actor(cfg, endpoint, "robot0", human=TeleopHuman(device), console=console)
        try:
            assert actor.run_episode()["interventions"] == 0  # untouched device: the policy drives
            _post_event(console, "takeover")
            held = actor.run_episode()
            assert device.takeover and held["interventions"] == held["length"] == 100
            assert held["takeovers"] == 1
            _post_event(console, "takeover")  # released: the policy drives again
            assert actor.run_episode()["interventions"] == 0 and not device.takeover
        finally:
            actor.close()
