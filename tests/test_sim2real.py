"""Sim-to-real: stand-ins for real robots (a fixed shift served behind ROS 2 exactly like hardware), the
shift reproduced step for step in-process, its parameters never reaching the training process, domain
randomisation in training, and evaluating a run zero-shot on a robot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.standin import available_standins, load_standin
from tests.ros_helpers import ObsPickPolicy, SimRobotProcess, fresh_domain_id

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_standins_load_and_bad_ones_are_clear_errors(tmp_path):
    assert {"pick_cube", "peg_insertion"} <= set(available_standins())
    for name in available_standins():
        shift = load_standin(name)
        env = sim.make(shift.task)
        shift.sample_for(env)  # cameras and geoms exist
        env.close()
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: PickCube-v0\nfriction: 0.5\n")
    with pytest.raises(ValueError, match="unknown key.*friction"):
        load_standin(str(bad))
    bad.write_text("task: PickCube-v0\ngain_scale: 50\n")
    with pytest.raises(ValueError, match="gain_scale"):
        load_standin(str(bad))
    bad.write_text("task: PickCube-v0\ncolors: {teapot: [0.1, 0, 0]}\n")
    env = sim.make("PickCube-v0")
    with pytest.raises(ValueError, match="teapot"):
        load_standin(str(bad)).sample_for(env)
    env.close()
    with pytest.raises(ValueError, match="no stand-in"):
        load_standin("mars_rover")


def test_a_domain_shift_changes_dynamics_and_perception_but_not_the_ground_truth():
    shift = load_standin("pick_cube")
    nominal, shifted = sim.make("PickCube-v0"), sim.make("PickCube-v0")
    shifted.set_domain_shift(shift.sample_for(shifted))
    nominal.reset(seed=5)
    _, info = shifted.reset(seed=5)
    assert info["randomization"]["gain_scale"] == 0.6 and info["randomization"]["action_latency_steps"] == 2
    cube = shifted.model.body("cube").id
    assert shifted.model.body_mass[cube] == pytest.approx(2.5 * nominal.model.body_mass[cube])
    # The tracker's bias is in what the policy sees, not in where the cube is.
    np.testing.assert_allclose(shifted.task_state()[:3] - nominal.task_state()[:3], shift.object_position_bias, atol=1e-6)
    np.testing.assert_allclose(shifted.cube_position(), nominal.cube_position(), atol=1e-9)
    # Two control periods of latency: the first two commands do not move the arm yet.
    push = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    start_nominal, start_shifted = nominal.arm.ee_position.copy(), shifted.arm.ee_position.copy()
    for _ in range(2):
        nominal.step(push), shifted.step(push)
    assert np.linalg.norm(nominal.arm.ee_position - start_nominal) > 0.02
    assert np.linalg.norm(shifted.arm.ee_position - start_shifted) < 0.005
    nominal.close(), shifted.close()
    # Peg: the held peg's tip is known from the arm's kinematics; only the hole's tracked position is off,
    # so the bias shows in tip - hole, which is what a policy aims with.
    shift = load_standin("peg_insertion")
    peg = sim.make("PegInsertion-v0")
    peg.set_domain_shift(shift.sample_for(peg))
    peg.reset(seed=5)
    state, bias = peg.task_state(), np.asarray(shift.object_position_bias)
    np.testing.assert_allclose(state[:3], peg.peg_tip(), atol=1e-6)
    np.testing.assert_allclose(state[7:10] - peg.hole_position(), bias, atol=1e-6)
    np.testing.assert_allclose(state[10:13], peg.peg_tip() - peg.hole_position() - bias, atol=1e-6)
    peg.close()


def test_a_standin_behind_ros_reproduces_the_shifted_sim_step_for_step(tmp_path):
    """The node applies the stand-in's dynamics and tracker bias exactly as the in-process env does (noise
    and latency off so the two can match to float precision: the env delays actions, the node delays the
    already-filtered targets in transit, as a real link does), and its command latency as many periods."""
    from robot_rl.ros.robot_env import make_robot_env

    path = tmp_path / "standin.yaml"
    values = {k: v for k, v in vars(load_standin("pick_cube")).items() if k not in ("name", "observation_noise_std")}
    path.write_text(json.dumps({**values, "object_position_bias": list(values["object_position_bias"]),
                                "action_latency_steps": 0}))
    shift = load_standin(str(path))
    domain = fresh_domain_id()
    with SimRobotProcess(domain, lockstep=True, cameras=[], seed=3, standin=str(path)):
        env = make_robot_env("PickCube-v0", lockstep=True, domain_id=domain)
        local = sim.make("PickCube-v0")
        local.set_domain_shift(shift.sample_for(local))
        try:
            obs, _ = env.reset(seed=77)
            local_obs, _ = local.reset(seed=77)
            policy, done, steps = ObsPickPolicy(), False, 0
            while not done and steps < 60:
                for key in ("proprio", "object"):
                    np.testing.assert_allclose(obs[key], local_obs[key], atol=1e-4, err_msg=f"{key} at step {steps}")
                action = policy.act(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
                local_obs, local_reward, local_terminated, _, _ = local.step(action)
                assert (reward, terminated) == (local_reward, local_terminated)
                done, steps = terminated or truncated, steps + 1
            assert steps >= 20
        finally:
            env.close()
            local.close()
    with SimRobotProcess(domain, lockstep=True, cameras=[], standin="pick_cube"):  # 2 periods of latency
        env = make_robot_env("PickCube-v0", lockstep=True, domain_id=domain)
        try:
            obs, _ = env.reset(seed=77)
            start = obs["proprio"][:3].copy()
            moved = []
            for _ in range(4):
                obs, *_ = env.step(np.array([1.0, 0.0, 0.0, 1.0], np.float32))
                moved.append(float(np.linalg.norm(obs["proprio"][:3] - start)))
            assert moved[1] < 0.015 and moved[3] > 0.025, moved  # (4 mm sensor noise per axis)
        finally:
            env.close()


_TRAIN_AND_REPORT = """
import json, sys
from robot_rl.train import TrainConfig, Trainer
cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
result = Trainer(cfg).run()
print(json.dumps({"standin_imported": "sim.standin" in sys.modules, "env_steps": result["env_steps"]}))
"""


def test_training_against_a_standin_never_sees_its_parameters(tmp_path):
    """The learner trains through ROS 2 against a stand-in: nothing of the stand-in is importable from its
    config, loaded in its process, or written to its run directory."""
    from robot_rl.train import TrainConfig

    assert not any("standin" in name for name in TrainConfig.__dataclass_fields__)
    domain = fresh_domain_id()
    out = tmp_path / "run"
    values = {"out_dir": str(out), "total_env_steps": 60, "num_demos": 1, "eval_every": 60, "eval_episodes": 1,
              "tensorboard": False, "progress": False, "agent": {"batch_size": 16, "utd": 1},
              "robot": {"enabled": True, "lockstep": True, "domain_id": domain}}
    with SimRobotProcess(domain, lockstep=True, cameras=[], standin="pick_cube"):
        run = subprocess.run([sys.executable, "-c", _TRAIN_AND_REPORT, json.dumps(values)], capture_output=True,
                             text=True, timeout=300, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"standin_imported": False, "env_steps": 60}
    written = " ".join(p.read_text(errors="ignore") for p in out.rglob("*.json*"))
    assert "standin" not in written and "pick_cube" not in written
    assert json.loads((out / "config.json").read_text())["randomization"]["enabled"] is False


def test_domain_randomisation_applies_to_training_and_not_to_evaluation(tmp_path):
    from robot_rl.train import TrainConfig, make_env, make_eval_env

    cfg = TrainConfig.from_dict({"randomization": {"enabled": True, "gain_scale": [0.5, 0.6],
                                                   "object_position_bias_std": 0.01}})
    _, info = make_env(cfg).reset(seed=1)
    assert 0.5 <= info["randomization"]["gain_scale"] <= 0.6 and any(info["randomization"]["object_position_bias"])
    _, info = make_eval_env(cfg).reset(seed=1)
    assert info["randomization"]["gain_scale"] == 1.0 and not any(info["randomization"]["object_position_bias"])
    with pytest.raises(ValueError, match="object_position_bias_std"):
        TrainConfig.from_dict({"randomization": {"object_position_bias_std": 5.0}})


def test_evaluate_a_run_in_the_sim_and_zero_shot_on_a_standin(tmp_path):
    from robot_rl.cli import main
    from robot_rl.train import TrainConfig, Trainer, evaluate_checkpoint

    out = tmp_path / "run"
    Trainer(TrainConfig(out_dir=str(out), total_env_steps=50, num_demos=1, eval_every=50, eval_episodes=1,
                        tensorboard=False, progress=False, agent={"batch_size": 16, "utd": 1})).run()
    in_sim = evaluate_checkpoint(out, episodes=2)
    assert in_sim["robot"] is False and in_sim["episodes"] == 2 and 0.0 <= in_sim["success_rate"] <= 1.0
    domain = fresh_domain_id()
    with SimRobotProcess(domain, lockstep=True, cameras=[], standin="pick_cube"):
        assert main(["evaluate", str(out), "--episodes", "1",
                     "--set", "robot.enabled=true", f"robot.domain_id={domain}"]) == 0
    with pytest.raises(ValueError, match="not a run directory"):
        evaluate_checkpoint(tmp_path / "nothing")


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _benchmark():
    """benchmarks/sim2real.py as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sim2real_benchmark", ROOT / "benchmarks" / "sim2real.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_benchmark_measures_the_shipped_recipe_configs(tmp_path):
    """What benchmarks/sim2real.py trains is configs/sim2real/*.yaml plus only how it measures: a recipe
    setting changed in the benchmark alone (and so measured but never shipped) fails here."""
    from robot_rl.config import load_yaml
    from robot_rl.train import TrainConfig

    bench = _benchmark()
    measurement = {"eval_every", "eval_episodes", "seed", "out_dir", "warm_start", "robot.domain_id",
                   "robot.eval_namespace", "agent.teacher"}
    settings = bench.recipe_settings("pick", tmp_path, quick=False, domain=7, seed=3)
    for recipe_name, config_name in bench.RECIPE_CONFIGS.items():
        shipped = _flat(load_yaml(ROOT / "configs" / "sim2real" / f"pick_cube_{config_name}.yaml"))
        measured = _flat(settings[recipe_name])
        assert set(measured) - set(shipped) <= measurement, recipe_name
        assert {k: v for k, v in measured.items() if k not in measurement} == \
            {k: v for k, v in shipped.items() if k not in measurement}, recipe_name
        assert measured["seed"] == 3 and measured["eval_episodes"] == 20
        TrainConfig.from_dict(settings[recipe_name])  # and each is a valid run
    dr, finetune = settings["sim_dr"], settings["finetune"]
    assert finetune["warm_start"] == str(tmp_path / "pick_sim_dr" / "checkpoint.pt")
    assert finetune["robot"]["domain_id"] == 7 and finetune["robot"]["eval_namespace"] == "eval"
    # The baselines: scratch gets fine-tuning's budget and the DR policy's observation.
    assert settings["scratch"]["total_env_steps"] == finetune["total_env_steps"]
    assert settings["scratch"].get("action_history", 0) == dr.get("action_history", 0) == finetune.get("action_history", 0)
    assert settings["hybrid"]["randomization"] == dr["randomization"]
    longer = bench.recipe_settings("pick", tmp_path, quick=False, domain=7, seed=3, scratch_steps=20_000)
    assert longer["scratch"]["total_env_steps"] == longer["hybrid"]["total_env_steps"] == 20_000
    assert longer["finetune"] == finetune
    shorter = bench.recipe_settings("pick", tmp_path, quick=False, domain=7, seed=3, finetune_steps=4_000)
    for recipe_name in bench.FINETUNE_RECIPES + ("scratch", "hybrid"):  # scratch follows fine-tuning's budget
        assert shorter[recipe_name]["total_env_steps"] == 4_000, recipe_name
        assert {**shorter[recipe_name], "total_env_steps": 0} == {**settings[recipe_name], "total_env_steps": 0}
    assert shorter["sim_dr"] == dr and shorter["distill"] == settings["distill"]
    # Peg takes pick's recipes with its own task and demos; quick mode shrinks budgets, not recipes.
    peg = bench.recipe_settings("peg", tmp_path, quick=True, domain=7)
    assert peg["sim_dr"]["env"]["id"] == "PegInsertion-v0" and peg["sim_dr"]["num_demos"] == 20
    assert peg["finetune"]["num_demos"] == 0 and peg["finetune"]["total_env_steps"] == 300
    assert peg["finetune"]["agent"]["num_critics"] == finetune["agent"]["num_critics"]
    assert peg["finetune"]["critic_warmup_steps"] == 100 and peg["sim_dr"]["randomization"] == dr["randomization"]


def test_the_benchmark_continues_a_finished_shorter_run_and_restarts_a_different_one(tmp_path):
    """--scratch-steps on a --work-dir that holds a shorter scratch run trains on from its checkpoint."""
    bench = _benchmark()
    out = tmp_path / "pick_scratch"
    settings = {"env": {"id": "PickCube-v0"}, "num_demos": 2, "learning_starts": 50, "eval_every": 100, "eval_episodes": 1,
                "total_env_steps": 200, "out_dir": str(out), "agent": {"hidden_dims": [32, 32], "batch_size": 32},
                "robot": {"domain_id": 120}}
    short = bench._train(out, settings)
    assert [e["env_step"] for e in short] == [100, 200]
    # A later call picks another ROS 2 domain (--domain-id defaults to one from its pid): the same run.
    later = {**settings, "robot": {"domain_id": 121}}
    longer = bench._train(out, {**later, "total_env_steps": 300})
    assert longer[:2] == short and [e["env_step"] for e in longer] == [100, 200, 300]  # continued, not redone
    assert bench._train(out, {**settings, "robot": {"domain_id": 122}, "total_env_steps": 300}) == longer  # reused
    other = bench._train(out, {**settings, "total_env_steps": 300, "learning_starts": 60})
    assert [e["env_step"] for e in other] == [100, 200, 300] and other[0] != short[0]  # another run: redone


def test_the_plot_is_skipped_when_no_recipe_trained_on_the_stand_in(tmp_path):
    """Zero-shot recipes alone (e.g. --recipes distill) leave no curve to draw: no PNG, and no crash."""
    bench = _benchmark()
    zero_shot = {"pick_distill_pixels_standin_zero_shot_success": 0.8}
    assert not bench.plot(zero_shot, str(tmp_path / "none.png")) and not (tmp_path / "none.png").exists()
    curves = {**zero_shot, "pick_curves": {"distill_finetune": [(1000, 0.85), (2000, 0.95)]}}
    assert bench.plot(curves, str(tmp_path / "pick.png")) and (tmp_path / "pick.png").stat().st_size > 5_000


def test_a_budget_of_zero_or_less_is_refused_before_any_training():
    run = subprocess.run([sys.executable, "benchmarks/sim2real.py", "--scratch-steps", "0"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=False)
    assert run.returncode == 2 and "--scratch-steps: must be a positive number of stand-in steps" in run.stderr
    run = subprocess.run([sys.executable, "benchmarks/sim2real.py", "--finetune-steps", "-1"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=False)
    assert run.returncode == 2 and "--finetune-steps: must be a positive number of stand-in steps" in run.stderr


def test_the_sim2real_benchmark_runs_in_quick_mode(tmp_path):
    """Every recipe through ROS 2 against stand-in nodes, at tiny budgets (the pipeline, not the numbers):
    (a) domain randomisation zero-shot, (c) WSRL fine-tuning and (d) hybrid against training from scratch,
    (b) asymmetric and (e) distilled pixel policies zero-shot, and each fine-tuned from the stand-in's cameras."""
    out, png = tmp_path / "sim2real.json", tmp_path / "sim2real.png"
    run = subprocess.run([sys.executable, "benchmarks/sim2real.py", "--quick", "--pixels", "--tasks", "pick", "--out", str(out),
                          "--plot", str(png), "--domain-id", str(fresh_domain_id())],
                         capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    for key in ("pick_sim_nominal_sim_success", "pick_sim_dr_standin_zero_shot_success",
                "pick_finetune_standin_final_success", "pick_scratch_standin_final_success",
                "pick_hybrid_standin_final_success", "pick_asymmetric_pixels_standin_zero_shot_success",
                "pick_distill_pixels_standin_zero_shot_success", "pick_asymmetric_finetune_standin_final_success",
                "pick_distill_finetune_standin_final_success"):
        assert 0.0 <= results[key] <= 1.0, key
    for recipe_name in ("finetune", "asymmetric_finetune", "distill_finetune"):
        assert [step for step, _ in results["pick_curves"][recipe_name]] == [100, 200, 300], recipe_name
    assert png.stat().st_size > 10_000


def _stat(process: Path) -> list[str] | None:
    """A /proc/PID directory's stat fields after the command name (state, ppid, ...); None once it is gone."""
    try:
        return (process / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    return [int(process.name) for process in Path("/proc").glob("[0-9]*")
            if (fields := _stat(process)) is not None and int(fields[1]) == pid]


def _alive(pid: int) -> bool:
    fields = _stat(Path("/proc") / str(pid))
    return fields is not None and fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from Linux /proc")
def test_a_killed_sim2real_benchmark_stops_its_stand_ins_and_its_training_process(tmp_path):
    """SIGTERM (`kill`, a CI timeout) must not orphan the stand-in nodes (their own process groups) or the
    training process: they would keep two cores busy and the ROS 2 domain taken."""
    bench = subprocess.Popen([sys.executable, "benchmarks/sim2real.py", "--quick", "--tasks", "pick", "--recipes",
                              "scratch", "--domain-id", str(fresh_domain_id()), "--work-dir", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(children) < 3 and time.monotonic() < deadline and bench.poll() is None:
            time.sleep(0.5)  # scratch trains on the stand-in: two stand-in nodes (robot, eval) and the trainer
            children = _children(bench.pid)
        assert len(children) == 3, f"expected 2 stand-ins + 1 trainer, found {children}; {bench.stderr.read()[-2000:]}"
        bench.terminate()
        assert bench.wait(30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)], "left running after the benchmark was killed"
    finally:
        bench.kill()
        bench.wait()
        for pid in children:  # whatever the benchmark left behind, so a failure here does not spread
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_distillation_trains_a_pixel_student_on_a_state_teachers_labels(tmp_path):
    """Recipe (e): DAgger from a state teacher run into a pixel student; the student's checkpoint fits the
    teacher's labels far better than an untrained one, and deploys zero-shot through ROS 2."""
    import torch

    from robot_rl.agents.sac import SACAgent
    from robot_rl.replay import ReplayBuffer
    from robot_rl.train import TrainConfig, Trainer, evaluate_checkpoint

    small = {"tensorboard": False, "progress": False, "eval_episodes": 1, "agent": {"batch_size": 32, "utd": 1}}
    teacher = tmp_path / "teacher"
    Trainer(TrainConfig.from_dict({**small, "out_dir": str(teacher), "total_env_steps": 60, "num_demos": 1,
                                   "eval_every": 60})).run()
    student = tmp_path / "student"
    cfg = TrainConfig.from_dict({**small, "out_dir": str(student), "obs_mode": "pixels",
                                 "image_size": 32, "num_demos": 0, "total_env_steps": 150, "eval_every": 150,
                                 "learning_starts": 32, "agent": {**small["agent"], "name": "distill", "utd": 2,
                                                                  "teacher": str(teacher), "handover_steps": 50}})
    trainer = Trainer(cfg)
    trainer.run()
    buffer = ReplayBuffer.load(student / "online_buffer.npz")
    batch = buffer.sample(128, np.random.default_rng(0))
    obs = {k: torch.as_tensor(v) for k, v in batch.obs.items()}
    labels = trainer.agent.teacher.label(batch.obs)  # DAgger: every visited state, the teacher's action

    def error(agent):
        with torch.no_grad():
            return float(((agent.actor.deterministic(agent.features(obs)) - labels) ** 2).mean())

    fresh = SACAgent(trainer.obs_spec, trainer.action_dim, cfg.agent)
    assert error(trainer.agent.student) < 0.5 * error(fresh)
    assert json.loads((student / "eval.jsonl").read_text().splitlines()[-1])["env_step"] == 150
    domain = fresh_domain_id()
    with SimRobotProcess(domain, lockstep=True, cameras=["front", "wrist"], image_size=32, standin="pick_cube"):
        result = evaluate_checkpoint(student, {"robot": {"enabled": True, "domain_id": domain}}, episodes=1)
    assert result["robot"] is True
    with pytest.raises(ValueError, match="distill"):
        TrainConfig(agent={"name": "distill"})
    with pytest.raises(ValueError, match="from state"):
        Trainer(TrainConfig.from_dict({**small, "out_dir": str(tmp_path / "bad"),
                                       "obs_mode": "pixels", "image_size": 32, "num_demos": 0,
                                       "agent": {"name": "distill", "teacher": str(student)}})).run()


def test_the_dynamics_gap_weights_simulator_transitions_by_how_real_their_dynamics_are():
    """H2O's ratio from two real-vs-sim classifiers: where the simulator moves like the robot its
    transitions keep weight ~1; where it does not they fade."""
    import torch

    from robot_rl.agents.h2o import DynamicsGap, HybridConfig
    from robot_rl.replay import Batch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def batch(n, sim):
        s = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
        gain = np.where(s[:, :1] > 0, 3.0, 1.0) if sim else 1.0  # the sim is wrong where s0 > 0
        s_next = (s + 0.3 * gain * a).astype(np.float32)
        zeros = np.zeros(n, np.float32)
        return Batch({"proprio": s}, a, zeros, {"proprio": s_next}, zeros + 1, zeros.astype(bool), zeros.astype(bool))

    gap = DynamicsGap(2, 1, HybridConfig(enabled=True, input_noise_std=0.0), hidden=(64, 64))
    for _ in range(1500):
        gap.update(batch(128, sim=False), batch(128, sim=True))
    probe = batch(2000, sim=True)
    w = gap.weights(probe)
    right, wrong = w[probe.obs["proprio"][:, 0] < 0], w[probe.obs["proprio"][:, 0] > 0]
    assert right.mean() > 3 * wrong.mean(), (right.mean(), wrong.mean())
    assert w.mean() == pytest.approx(1.0, abs=1e-4) and w.min() > 0
    with pytest.raises(ValueError, match="sim_fraction"):
        HybridConfig(sim_fraction=1.5)


def test_hybrid_training_runs_a_simulator_beside_a_standin_robot(tmp_path):
    """Recipe (d) end to end through ROS 2: the robot's transitions and a randomised simulator's, mixed and
    weighted in the critic's batches, with H2O's conservative term."""
    from robot_rl.train import TrainConfig, Trainer

    domain = fresh_domain_id()
    cfg = TrainConfig.from_dict({"out_dir": str(tmp_path / "run"), "total_env_steps": 80, "num_demos": 1,
                                 "eval_every": 80, "eval_episodes": 1, "learning_starts": 40, "tensorboard": False,
                                 "progress": False, "agent": {"batch_size": 32, "utd": 1},
                                 "hybrid": {"enabled": True, "sim_steps_per_step": 2, "conservative_weight": 1.0},
                                 "randomization": {"enabled": True},
                                 "robot": {"enabled": True, "lockstep": True, "domain_id": domain}})
    with SimRobotProcess(domain, lockstep=True, cameras=[], standin="pick_cube"):
        trainer = Trainer(cfg)
        trainer.run()
    assert trainer.env_steps == 80 and len(trainer.hybrid.buffer) >= 150
    assert trainer.hybrid.metrics["sim_weight_max"] >= 1.0 and "dynamics_gap_loss" in trainer.hybrid.metrics
    assert trainer.agent.sim_penalty_weight == 1.0
    with pytest.raises(ValueError, match="conservative_weight"):
        TrainConfig.from_dict({"hybrid": {"enabled": True, "conservative_weight": -1.0}})


def test_an_asymmetric_pixel_policy_deploys_and_fine_tunes_on_a_standin(tmp_path):
    """Recipe (b): critics on the simulator's privileged state, actor on pixels + proprio. On the robot the
    actor alone acts, from the robot's own camera topics; fine-tuning there (recipe c on pixels) feeds the
    critics from the robot's object tracker (the stand-in's object_state topic), never the actor."""
    from robot_rl.replay import ReplayBuffer
    from robot_rl.ros.robot_env import RobotEnvConfig
    from robot_rl.train import TrainConfig, Trainer, evaluate_checkpoint, make_env

    small = {"obs_mode": "pixels", "image_size": 32, "eval_episodes": 1, "tensorboard": False, "progress": False,
             "agent": {"asymmetric": True, "batch_size": 16, "utd": 1}}
    out = tmp_path / "asym"
    Trainer(TrainConfig.from_dict({**small, "out_dir": str(out), "total_env_steps": 40, "num_demos": 1,
                                   "eval_every": 40, "learning_starts": 20, "randomization": {"enabled": True}})).run()
    domain = fresh_domain_id()
    robot = {"enabled": True, "lockstep": True, "domain_id": domain}
    fine = TrainConfig.from_dict({**small, "out_dir": str(tmp_path / "fine"), "total_env_steps": 30, "num_demos": 0,
                                  "demo_ratio": 0.0, "eval_every": 30, "learning_starts": 10, "critic_warmup_steps": 10,
                                  "warm_start": str(out / "checkpoint.pt"), "anchor_weight": 1.0, "robot": robot})
    with SimRobotProcess(domain, lockstep=True, cameras=["front", "wrist"], image_size=32, standin="pick_cube"):
        result = evaluate_checkpoint(out, {"robot": robot}, episodes=1)
        assert result["robot"] is True and result["mean_length"] >= 1
        acting = make_env(fine, evaluation=True)  # acting needs no tracker
        assert "privileged" not in acting.observation_space.spaces
        acting.close()
        Trainer(fine).run()
    buffer = ReplayBuffer.load(tmp_path / "fine" / "online_buffer.npz")
    privileged = buffer.sample(16, np.random.default_rng(0)).obs["privileged"]
    assert len(buffer) == 30 and privileged.shape == (16, sim.TASKS["PickCube-v0"].OBJECT_STATE_DIM)
    assert np.abs(privileged).sum() > 0
    assert json.loads((tmp_path / "fine" / "eval.jsonl").read_text().splitlines()[-1])["env_step"] == 30
    with pytest.raises(ValueError, match="privileged"):
        RobotEnvConfig(obs_mode="state", privileged=True, object_state_dim=10)
