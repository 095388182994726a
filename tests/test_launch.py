"""Launch files: every one parses, every executable is a valid `robot-rl` command line whose profiles
exist, and `robot-rl up` runs the sim training composition end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robot_rl.cli import build_parser
from robot_rl.launcher import LAUNCH_DIR, find_launch_file, parse
from tests.ros_helpers import fresh_domain_id

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.xml"))


def test_the_shipped_compositions_are_all_there():
    assert {p.name for p in LAUNCH_FILES} >= {"sim_train.launch.xml", "sim_actors.launch.xml",
                                               "real_train.launch.xml", "teleop.launch.xml"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_executable_is_a_valid_robot_rl_command(path):
    from hardware.robots import load_profile
    from robot_rl.config import parse_overrides
    from robot_rl.train import TrainConfig

    root = ET.parse(path).getroot()  # plain ROS 2 launch XML: what `ros2 launch` reads
    assert root.tag == "launch"
    for arg in root.iter("arg"):
        assert arg.get("description"), f"{path.name}: <arg name={arg.get('name')!r}> needs a description"
    composition = parse(path)
    assert composition.executables
    parser = build_parser()
    for executable in composition.executables:
        assert executable.argv[0] == "robot-rl", executable
        args = parser.parse_args(executable.argv[1:])  # exits (SystemExit) on a bad option
        for profile in {getattr(args, "profile", None)} - {None}:
            load_profile(profile)
        if getattr(args, "set", None):
            TrainConfig.from_dict(parse_overrides(args.set))  # every key exists and has the right type
    assert any(e.shutdown_on_exit for e in composition.executables), "one process must end the composition"


def test_launch_arguments_are_checked():
    path = find_launch_file("sim_train")
    with pytest.raises(ValueError, match="unknown argument"):
        parse(path, {"stepz": "10"})
    assert "total_env_steps=77" in " ".join(parse(path, {"steps": "77"}).executables[1].argv)
    with pytest.raises(ValueError, match="not found"):
        find_launch_file("no_such_composition")


def test_robot_rl_up_trains_through_ros_against_the_sim(tmp_path):
    out = tmp_path / "run"
    extra = "num_demos=2 eval_every=150 eval_episodes=2 learning_starts=50 progress=false tensorboard=false"
    done = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "up", "sim_train", "steps:=150", f"out:={out}",
         f"domain_id:={fresh_domain_id()}", f"extra:={extra}"],
        capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "[sim_robot]" in done.stdout and "[train" in done.stdout
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert evals[-1]["env_step"] == 150
    assert json.loads((out / "config.json").read_text())["robot"]["enabled"] is True


def test_real_train_acts_on_the_robot_and_teleop_needs_no_reward_node():
    from robot_rl.config import parse_overrides
    from robot_rl.train import TrainConfig

    parser = build_parser()
    real = parse(find_launch_file("real_train"), {"profile": "franka_fr3_franky", "domain_id": "7"})
    actor = next(e for e in real.executables if e.argv[1] == "actor")
    cfg = TrainConfig.from_dict(parse_overrides(parser.parse_args(actor.argv[1:]).set))
    # It trained in MuJoCo while the bridge idled: the actor must act on the robot the bridge serves.
    assert cfg.robot.enabled and cfg.robot.profile == "franka_fr3_franky" and cfg.robot.domain_id == 7
    teleop = parse(find_launch_file("teleop"))
    assert not any(e.argv[1] == "rewards" for e in teleop.executables)  # success from the operator's keys
    from hardware.robots import load_profile
    from robot_rl.ros.robot_env import RobotEnvConfig

    config = RobotEnvConfig.from_profile(load_profile("franka_fr3_franky"), success_topic=False)
    assert not config.success_topic


def test_shipped_franky_profile_options_are_valid():
    from hardware.robots import load_profile
    from hardware.robots.franky_bridge import FrankyOptions

    options = FrankyOptions.from_profile(load_profile("franka_fr3_franky"))
    assert options.realtime and len(options.lower_joint_limits) == 7
    with pytest.raises(ValueError, match="driver: unknown key"):
        from hardware.robots.profile import profile_from_dict

        FrankyOptions.from_profile(profile_from_dict({"name": "x", "bridge": "franky", "driver": {"stifness": 1}}))
