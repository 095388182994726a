"""The `robot-rl` command and the throughput benchmark, run as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args, timeout=300):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_help_lists_the_commands():
    out = _run(sys.executable, "-m", "robot_rl.cli", "--help")
    assert out.returncode == 0
    assert "expert" in out.stdout and "tasks" in out.stdout


def test_expert_command_reports_success_and_writes_a_video(tmp_path):
    video = tmp_path / "pick.mp4"
    out = _run(sys.executable, "-m", "robot_rl.cli", "expert", "--task", "PickCube-v0", "--episodes", "2",
               "--video", str(video))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["success_rate"] == 1.0 and summary["episodes"] == 2
    assert video.stat().st_size > 1000


def test_bad_task_id_is_one_clear_line():
    out = _run(sys.executable, "-m", "robot_rl.cli", "expert", "--task", "Nope-v0")
    assert out.returncode == 2
    assert "unknown task id 'Nope-v0'" in out.stderr and "Traceback" not in out.stderr


def test_bad_episode_count_is_rejected():
    out = _run(sys.executable, "-m", "robot_rl.cli", "expert", "--episodes", "0")
    assert out.returncode == 2 and "--episodes" in out.stderr


def test_tasks_command_lists_both_tasks():
    out = _run(sys.executable, "-m", "robot_rl.cli", "tasks")
    assert out.returncode == 0
    assert "robot_rl/PickCube-v0" in out.stdout and "robot_rl/PegInsertion-v0" in out.stdout


def test_throughput_benchmark_writes_its_figures(tmp_path):
    out_file = tmp_path / "sim.json"
    out = _run(sys.executable, "benchmarks/sim_throughput.py", "--quick", "--tasks", "PickCube-v0",
               "--out", str(out_file))
    assert out.returncode == 0, out.stderr
    figures = json.loads(out_file.read_text())
    for key in ("pick_cube_state_env_steps_per_s", "pick_cube_pixels_2x128_env_steps_per_s",
                "pick_cube_raw_mj_steps_per_s", "pick_cube_controller_overhead_ratio"):
        assert figures[key] > 0
    assert "pick_cube_state_env_steps_per_s" in out.stdout


def test_learner_benchmark_writes_its_figures(tmp_path):
    out_file = tmp_path / "learner.json"
    out = _run(sys.executable, "benchmarks/learner_throughput.py", "--no-compile", "--seconds", "0.3",
               "--out", str(out_file))
    assert out.returncode == 0, out.stderr
    figures = json.loads(out_file.read_text())
    for key in ("state_2_critics_naive_loop_updates_per_s", "state_10_critics_batched_updates_per_s",
                "state_10_critics_batched_bf16_updates_per_s", "pixels_2x64_2_critics_updates_per_s",
                "distill_pixels_2x48_fp32_updates_per_s", "distill_pixels_2x48_bf16_updates_per_s"):
        assert figures[key] > 0


def test_sample_efficiency_benchmark_runs_an_offline_baseline(tmp_path):
    out_file = tmp_path / "se.json"
    out = _run(sys.executable, "benchmarks/sample_efficiency.py", "--quick", "--runs", "pick_cube_state_bc_10_demos",
               "--out", str(out_file), "--workdir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    figures = json.loads(out_file.read_text())
    run = figures["runs"][0]
    assert "error" not in run and run["updates"] == 1000
    assert figures["pick_cube_state_bc_10_demos_final_success_median"] is not None
    assert (tmp_path / "se.png").stat().st_size > 0


def test_transport_and_teleop_latency_benchmarks_write_their_figures(tmp_path):
    out = _run(sys.executable, "benchmarks/transport.py", "--quick", "--out", str(tmp_path / "t.json"))
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads((tmp_path / "t.json").read_text())
    assert figures["loopback_no_spool_transitions_per_s"] > 0 and figures["weights_latency_ms_p99"] > 0
    out = _run(sys.executable, "benchmarks/hil.py", "--quick", "--latency-only", "--out", str(tmp_path / "h.json"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "h.json").read_text())["teleop_keyboard_latency_ms_p99"] > 0
