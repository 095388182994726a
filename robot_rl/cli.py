"""`robot-rl`: the command line of robot_rl."""

from __future__ import annotations

import argparse
import json
import sys
import time


def _cmd_tasks(args: argparse.Namespace) -> int:
    import sim

    for task_id, cls in sim.TASKS.items():
        env = cls()
        spec = env.config.action
        print(f"{sim.NAMESPACE}/{task_id}: {cls.__doc__.strip().splitlines()[0]}")
        print(f"    action ({spec.dim}): {list(spec.names)}, frame={spec.frame}")
        print(f"    observation: {env.observation_space}")
        env.close()
    return 0


def _cmd_expert(args: argparse.Namespace) -> int:
    import numpy as np

    import sim
    from sim.experts import expert_for

    env = sim.make(args.task, obs_mode=args.obs_mode)
    expert = expert_for(args.task, env, noise_std=args.noise, rng=np.random.default_rng(args.seed))
    writer = None
    if args.video:
        import cv2

        writer = cv2.VideoWriter(args.video, cv2.VideoWriter_fourcc(*"mp4v"), env.config.control_hz,
                                 (env.config.image_size, env.config.image_size))
    successes, steps, start = 0, 0, time.perf_counter()
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + episode)
        expert.reset()
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            steps += 1
            done = terminated or truncated
            if writer is not None:
                writer.write(env.render_camera("front")[:, :, ::-1])
        successes += int(info["success"])
        print(f"episode {episode:3d}  seed {args.seed + episode:5d}  steps {env.steps:3d}  "
              f"success {info['success']}")
    elapsed = time.perf_counter() - start
    if writer is not None:
        writer.release()
    summary = {"task": args.task, "episodes": args.episodes, "success_rate": successes / args.episodes,
               "env_steps": steps, "env_steps_per_s": steps / elapsed}
    print(json.dumps(summary))
    env.close()
    return 0


def _config(args: argparse.Namespace):
    """TrainConfig from --config / --set / --out (or, with --resume, the run's saved config.json)."""
    from pathlib import Path

    from robot_rl.config import load_yaml, merge, parse_overrides
    from robot_rl.train import TrainConfig

    values: dict = {}
    if getattr(args, "resume", False):
        saved = Path(args.out or "") / "config.json"
        if not args.out or not saved.exists():
            raise ValueError("--resume needs --out DIR of an earlier run (with its config.json)")
        values = json.loads(saved.read_text())
    elif args.config:
        values = load_yaml(args.config)
    values = merge(values, parse_overrides(args.set or []))
    if getattr(args, "out", None):
        values["out_dir"] = args.out
    return TrainConfig.from_dict(values)


def _summary(result: dict, out_dir: str) -> str:
    final = result["evals"][-1] if result["evals"] else {}
    return json.dumps({"env_steps": result["env_steps"], "updates": result["updates"],
                       "wall_s": round(result["wall_s"], 1), "final_success_rate": final.get("success_rate"),
                       "out_dir": out_dir})


def _cmd_train(args: argparse.Namespace) -> int:
    from robot_rl.train import Trainer

    cfg = _config(args)
    print(f"robot-rl train: {cfg.env.id} ({cfg.obs_mode}), {cfg.total_env_steps} env steps, "
          f"UTD {cfg.agent.utd}, {cfg.num_demos if cfg.demo_path is None else cfg.demo_path} demos",
          file=sys.stderr)
    trainer = Trainer(cfg, resume=args.resume)
    result = trainer.run()
    print(_summary(result, trainer.cfg.out_dir))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from robot_rl.config import parse_overrides
    from robot_rl.train import evaluate_checkpoint

    result = evaluate_checkpoint(args.run, parse_overrides(args.set or []), args.episodes, args.seed)
    print(json.dumps(result))
    return 0


def _endpoints(host: str, data_port: int, weights_port: int) -> tuple[str, str]:
    return f"tcp://{host}:{data_port}", f"tcp://{host}:{weights_port}"


def _cmd_learner(args: argparse.Namespace) -> int:
    import logging

    from robot_rl.distributed import Learner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = _config(args)
    data, weights = _endpoints(args.bind, args.data_port, args.weights_port)
    learner = Learner(cfg, data, weights, keys_dir=args.keys, resume=args.resume)
    print(f"robot-rl learner: {cfg.env.id} ({cfg.obs_mode}), waiting for actors on {data} "
          f"(weights on {weights}), run directory {learner.cfg.out_dir}", file=sys.stderr)
    try:
        result = learner.run()
    finally:
        learner.close()
    print(_summary(result, learner.cfg.out_dir))
    return 0


def _cmd_actor(args: argparse.Namespace) -> int:
    import logging
    import socket
    from pathlib import Path

    from robot_rl.distributed import Actor, config_hash
    from robot_rl.transport import ActorEndpoint

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = _config(args)
    actor_id = args.actor_id or socket.gethostname()
    spool = Path(args.spool or f"runs/actors/{actor_id}/spool")
    data, weights = _endpoints(args.learner, args.data_port, args.weights_port)
    endpoint = ActorEndpoint(actor_id, data, weights, config_hash(cfg), spool, keys_dir=args.keys)
    console = None
    if args.console is not None:
        from robot_rl.console import OperatorConsole

        console = OperatorConsole(port=args.console).start()
        print(f"robot-rl actor {actor_id}: operator console at {console.url}", file=sys.stderr)
    actor = Actor(cfg, endpoint, actor_id, episodes_dir=args.episodes_dir, console=console)
    if args.teleop:
        from hardware.teleop import TeleopConfig, make_device
        from robot_rl.intervention import TeleopHuman

        spec = actor.env.unwrapped.config.action
        if args.teleop == "ros":  # a `robot-rl teleop-node` elsewhere on the ROS 2 graph
            from hardware.teleop.ros import RosTeleopDevice

            device = RosTeleopDevice(TeleopConfig.for_action_spec(spec), namespace=cfg.robot.namespace,
                                     domain_id=cfg.robot.domain_id)
        else:
            device = make_device(args.teleop, TeleopConfig.for_action_spec(spec))
        actor.human = TeleopHuman(device)
    print(f"robot-rl actor {actor_id}: {cfg.env.id} ({cfg.obs_mode}) -> learner {data}, spool {spool}",
          file=sys.stderr)
    try:
        actor.run(max_episodes=args.episodes, flush_s=args.flush_s)
    finally:
        actor.close()
        if actor.human is not None and hasattr(actor.human, "device"):
            actor.human.device.close()
        if console is not None:
            console.close()
    print(json.dumps({"actor_id": actor_id, "episodes": actor.episodes, "env_steps": actor.steps,
                      "unsent_batches": endpoint.pending}))
    return 0


def _cmd_sim_robot(args: argparse.Namespace) -> int:
    from robot_rl.ros.sim_robot_node import main as run_node

    given = {"task": args.task, "cameras": args.cameras, "image_size": args.image_size,
             "control_hz": args.control_hz, "real_time_factor": args.real_time_factor,
             "lockstep": args.lockstep or None, "seed": args.seed, "reward": args.reward,
             "command_timeout_s": args.command_timeout_s, "standin": args.standin}
    run_node(["robot-rl", *args.ros_args], namespace=args.namespace, domain_id=args.domain_id,
             parameters={k: v for k, v in given.items() if v is not None})
    return 0


def _cmd_bridge(args: argparse.Namespace) -> int:
    from hardware.robots import load_profile
    from hardware.robots.bridge import main as run_bridge

    run_bridge(load_profile(args.profile), domain_id=args.domain_id, argv=["robot-rl", *args.ros_args])
    return 0


def _cmd_camera(args: argparse.Namespace) -> int:
    from hardware.cameras import CameraConfig
    from hardware.cameras.ros_node import main as run_camera
    from hardware.robots import load_profile

    namespace = args.namespace
    if args.profile is not None:
        profile = load_profile(args.profile)
        by_name = {c.name: c for c in profile.cameras}
        if args.camera not in by_name:
            raise ValueError(f"robot profile {profile.name!r} has cameras {sorted(by_name)}, not {args.camera!r}")
        config = by_name[args.camera]
        namespace = namespace or profile.namespace
    else:
        config = CameraConfig(name=args.camera, source=args.source, device=args.device, width=args.width,
                              height=args.height, fps=args.fps, crop=args.crop, resize=args.resize)
    run_camera(config, namespace=namespace or "robot", domain_id=args.domain_id, argv=["robot-rl", *args.ros_args])
    return 0


def _cmd_gripper(args: argparse.Namespace) -> int:
    from hardware.robots import load_profile
    from hardware.robots.gripper_action import main as run_gripper

    run_gripper(load_profile(args.profile), domain_id=args.domain_id, argv=["robot-rl", *args.ros_args])
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from hardware.robots.profile import PROFILES_DIR, load_profile

    for path in sorted(PROFILES_DIR.glob("*.yaml")):
        profile = load_profile(path)
        low, high = profile.safety.workspace_low, profile.safety.workspace_high
        print(f"{profile.name}: bridge={profile.bridge} namespace=/{profile.namespace} {profile.control_hz} Hz, "
              f"cameras {[c.name for c in profile.cameras]}, workspace {list(low)}..{list(high)} m, "
              f"max speed {profile.safety.max_linear_speed} m/s  ({path})")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from robot_rl.launcher import find_launch_file, parse, run

    overrides = {}
    for item in args.arguments:
        if ":=" not in item:
            raise ValueError(f"launch argument {item!r} must look like name:=value")
        name, value = item.split(":=", 1)
        overrides[name] = value
    composition = parse(find_launch_file(args.launch_file), overrides)
    if args.print:
        for executable in composition.executables:
            print(f"{executable.name}: {' '.join(executable.argv)}")
        return 0
    return run(composition)


def _cmd_teleop(args: argparse.Namespace) -> int:
    from robot_rl.ros.teleop_session import main as run

    return run(args.profile, args.device, args.episodes_dir, args.episodes, args.obs_mode, args.image_size,
               args.domain_id, args.action_history)


def _cmd_teleop_node(args: argparse.Namespace) -> int:
    from controllers.actions import ActionSpec
    from hardware.teleop import TeleopConfig, make_device
    from hardware.teleop.ros import run_teleop_node

    spec = ActionSpec(rotation=args.rotation, gripper=not args.no_gripper)
    device = make_device(args.device, TeleopConfig.for_action_spec(spec))
    run_teleop_node(device, namespace=args.namespace, rate_hz=args.rate_hz, domain_id=args.domain_id)
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from robot_rl.transport import generate_all

    paths = generate_all(args.out)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0


def _add_config_args(p: argparse.ArgumentParser, run_dir: bool) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="a YAML file of TrainConfig keys")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                   help="override config keys, nested with dots (agent.utd=8)")
    if run_dir:
        p.add_argument("--out", metavar="DIR",
                       help="run directory (default: the config's out_dir, else runs/<task>_<obs>_<time>)")
        p.add_argument("--resume", action="store_true",
                       help="continue the run in --out DIR from its last checkpoint")


def _add_transport_args(p: argparse.ArgumentParser, host_flag: str, host_help: str) -> None:
    p.add_argument(host_flag, default="127.0.0.1", metavar="HOST", help=host_help)
    p.add_argument("--data-port", type=int, default=5555, help="transitions and control (default 5555)")
    p.add_argument("--weights-port", type=int, default=5556, help="weight broadcast (default 5556)")
    p.add_argument("--keys", metavar="DIR",
                   help="CurveZMQ keys from `robot-rl keys` (required for any non-loopback address)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-rl",
        description="Reinforcement learning on real robots: off-policy learners (SAC/RLPD), MuJoCo "
                    "tasks, impedance control behind a safety filter, scripted experts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", help="train a policy in simulation (default: pick-cube from state with 10 demos)",
        description="Train SAC/RLPD in simulation. With no arguments it runs the embedded default: "
                    "PickCube-v0 from state, 10 scripted-expert demos, UTD 4, 10,000 env steps, evaluated "
                    "deterministically every 1,000 steps. Writes config.json, checkpoints, TensorBoard logs, "
                    "eval.jsonl and learning_curve.png to the run directory.",
        epilog="examples:\n  robot-rl train\n  robot-rl train --set env.id=PegInsertion-v0 num_demos=20\n"
               "  robot-rl train --config my_run.yaml --set agent.utd=8\n"
               "  robot-rl train --out runs/my_run --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(train, run_dir=True)
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate", help="a trained run's policy, deterministically, in the sim or on a ROS 2 robot",
        description="Evaluate the policy of a run directory (checkpoint.pt + config.json) with the mean action. "
                    "By default in the nominal in-process sim; with --set robot.enabled=true on a ROS 2 robot "
                    "(e.g. zero-shot on a `robot-rl sim-robot --standin pick_cube --lockstep` stand-in).",
        epilog="examples:\n  robot-rl evaluate runs/pick_dr\n"
               "  robot-rl evaluate runs/pick_dr --episodes 50 --set robot.enabled=true",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("run", metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=2_000_000_000, help="first scene seed (default: eval seeds)")
    evaluate.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="config overrides (robot.enabled=true, ...)")
    evaluate.set_defaults(func=_cmd_evaluate)

    learner = sub.add_parser(
        "learner", help="the learning half of a distributed run: actors connect to it over ZeroMQ",
        description="Learn from the episodes that N `robot-rl actor` processes (robots or simulators, on "
                    "this or other machines) send, and broadcast fresh weights to them. Same config, "
                    "agent, checkpoints and logs as `robot-rl train`; an actor is tagged by its id in "
                    "the logs. Binds to loopback unless --bind says otherwise (then --keys is required).",
        epilog="example (three terminals):\n  robot-rl learner --out runs/dist\n"
               "  robot-rl actor --actor-id sim0\n  robot-rl actor --actor-id sim1 --set seed=1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(learner, run_dir=True)
    _add_transport_args(learner, "--bind", "address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    learner.set_defaults(func=_cmd_learner)

    actor = sub.add_parser(
        "actor", help="run the policy in an env and stream episodes to a learner",
        description="Act with the newest weights from the learner and send every episode to it. While "
                    "the learner is unreachable the actor keeps acting with its last weights and spools "
                    "episodes on disk; they are re-sent, exactly once, when it is back.",
    )
    _add_config_args(actor, run_dir=False)
    _add_transport_args(actor, "--learner", "learner host (default 127.0.0.1)")
    actor.add_argument("--actor-id", help="unique, stable name of this actor (default: the hostname)")
    actor.add_argument("--episodes", type=int, help="stop after this many episodes (default: until the "
                       "learner is done)")
    actor.add_argument("--spool", metavar="DIR", help="where unsent episodes wait (default "
                       "runs/actors/<actor-id>/spool)")
    actor.add_argument("--episodes-dir", metavar="DIR", help="also keep every episode here, one .npz "
                       "each (see docs/episodes.md; `robot-rl dataset list DIR`)")
    actor.add_argument("--teleop", choices=("spacemouse", "gamepad", "keyboard", "ros"),
                       help="take over with this device (the `teleop` extra), or `ros`: a `robot-rl teleop-node` on "
                            "the robot's namespace; its steps are flagged and learned from")
    actor.add_argument("--console", type=int, nargs="?", const=8080, metavar="PORT",
                       help="serve the web operator console on 127.0.0.1:PORT (default 8080): cameras, "
                            "status, success/failure/reset/pause buttons")
    actor.add_argument("--flush-s", type=float, default=10.0, help="at the end, wait this long for the "
                       "learner to checkpoint the spooled episodes (default 10)")
    actor.set_defaults(func=_cmd_actor)

    sim_robot = sub.add_parser(
        "sim-robot", help="run a simulated task as a ROS 2 robot (the topics a real arm's stack speaks)",
        description="A MuJoCo task behind ROS 2: joint states, end-effector pose/twist/wrench, cameras "
                    "(raw + JPEG, camera info), object state, reward and success out; target pose or twist, "
                    "gripper and e-stop in; reset and clear_estop services. Commands pass the robot-side "
                    "guard, safety filter and watchdog, as on hardware. Needs the `ros` extra. Options not "
                    "given keep the node's parameter defaults; --ros-args ... passes ROS arguments through.",
        epilog="examples:\n  robot-rl sim-robot --lockstep                     # for `robot-rl train --set robot.enabled=true`\n"
               "  robot-rl sim-robot --cameras front --real-time-factor 1\n"
               "  robot-rl sim-robot --ros-args -p control_hz:=20.0\n"
               "  robot-rl sim-robot --standin pick_cube --lockstep   # a 'real' robot for sim-to-real",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_robot.add_argument("--task", help="task id (default PickCube-v0; see `robot-rl tasks`)")
    sim_robot.add_argument("--namespace", default="robot", help="ROS 2 namespace of the robot's topics (default robot)")
    sim_robot.add_argument("--lockstep", action="store_true",
                           help="advance one control period per command (training as fast as the learner goes) "
                                "instead of on a real-time clock")
    sim_robot.add_argument("--cameras", nargs="*", metavar="NAME", help="cameras to publish (default front wrist; "
                           "none: give the flag alone)")
    sim_robot.add_argument("--image-size", type=int, help="rendered image side in pixels (default 128)")
    sim_robot.add_argument("--control-hz", type=float, help="control periods per simulated second (default 10)")
    sim_robot.add_argument("--real-time-factor", type=float, help="simulated seconds per wall second (default 1)")
    sim_robot.add_argument("--seed", type=int, help="seed of the scene sequence (default 0)")
    sim_robot.add_argument("--reward", choices=("sparse", "dense"), help="reward published (default sparse)")
    sim_robot.add_argument("--command-timeout-s", type=float, help="watchdog timeout (default 0.5)")
    sim_robot.add_argument("--standin", metavar="NAME_OR_YAML",
                           help="be a stand-in for a real robot: a fixed shift of dynamics, visuals, latency and "
                                "noise the learner is never told (sim/standins: pick_cube, peg_insertion)")
    sim_robot.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    sim_robot.set_defaults(func=_cmd_sim_robot, ros_args=[])

    for name, func, help_, description, example in (
        ("bridge", _cmd_bridge, "run a real arm's bridge (franky, franka, ur) from a robot profile",
         "The robot side of a real arm: maps our topics onto the robot (franky: libfranka directly; franka / ur: "
         "the controller's topics named in the profile), with the command guard, safety filter, watchdog, e-stop, "
         "wrench limit and the robot's own safety state in between; `reset` moves the arm home, `recover` resumes "
         "after the robot stopped itself (operator only). Needs the `ros` extra, and the `franka` extra or the "
         "arm's own ROS 2 driver. Stamps use the node's ROS clock (--ros-args -p use_sim_time:=true for "
         "simulated time).",
         "robot-rl bridge franka_fr3_franky\n  robot-rl bridge my_cell.yaml --ros-args --log-level debug"),
        ("gripper", _cmd_gripper, "run a gripper adapter: our opening topic -> a control_msgs GripperCommand action",
         "For a gripper behind a GripperCommand action (franka_gripper's gripper_action, a Robotiq on "
         "ros2_control's GripperActionController): sends the bridge's opening as goals and publishes the measured "
         "width. Configured by the profile's gripper_action block. The action type is built by "
         "scripts/build_ros_interfaces.sh (setup.sh does it with the `ros` extra).",
         "robot-rl gripper franka_fr3"),
    ):
        node = sub.add_parser(name, help=help_, description=description, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        node.add_argument("profile", help="profile name (`robot-rl profiles`) or YAML path")
        node.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
        node.set_defaults(func=func, ros_args=[])

    camera = sub.add_parser(
        "camera", help="publish a camera as ROS 2 images (raw, JPEG, camera info) after crop and resize",
        description="Publish one camera on a robot's namespace (cameras/<name>/image_raw ...). Take its "
                    "settings from a robot profile (--profile P --camera NAME) or from the options.")
    camera.add_argument("--profile", help="robot profile holding this camera's settings")
    camera.add_argument("--camera", default="front", help="camera name (default front)")
    camera.add_argument("--namespace", help="ROS 2 namespace (default: the profile's, else robot)")
    camera.add_argument("--source", choices=("opencv", "realsense", "pattern"), default="opencv")
    camera.add_argument("--device", default="0", help="OpenCV index/path/URL or RealSense serial (default 0)")
    camera.add_argument("--width", type=int, default=640)
    camera.add_argument("--height", type=int, default=480)
    camera.add_argument("--fps", type=float, default=30.0)
    camera.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"))
    camera.add_argument("--resize", type=int, nargs=2, metavar=("W", "H"))
    camera.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    camera.set_defaults(func=_cmd_camera, ros_args=[])

    teleop = sub.add_parser(
        "teleop", help="drive a ROS 2 robot with a teleop device and record the episodes (demos)",
        description="No policy: the device drives the robot (sim node or bridge) through the robot env and its "
                    "safety filter; every episode is saved to --episodes-dir. Buttons: success/failure label and "
                    "end the episode, reset ends it, pause holds the robot.")
    teleop.add_argument("--profile", default="sim_panda", help="robot profile (default sim_panda)")
    teleop.add_argument("--device", choices=("spacemouse", "gamepad", "keyboard"), default="keyboard")
    teleop.add_argument("--episodes-dir", required=True, metavar="DIR")
    teleop.add_argument("--episodes", type=int, help="stop after this many (default: until Ctrl-C)")
    teleop.add_argument("--obs-mode", choices=("state", "pixels"), default="pixels")
    teleop.add_argument("--image-size", type=int, default=128)
    teleop.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    teleop.add_argument("--action-history", type=int, default=0, metavar="N",
                        help="observe the last N commands sent, as a run with `action_history: N` does (default 0)")
    teleop.set_defaults(func=_cmd_teleop)

    teleop_node = sub.add_parser(
        "teleop-node", help="publish a teleop device on ROS 2 (for `robot-rl actor --teleop ros` elsewhere)",
        description="Publish a device's normalised action, whether the human is driving, and operator events "
                    "(teleop/action, teleop/active, teleop/event) on a robot's namespace.")
    teleop_node.add_argument("--device", choices=("spacemouse", "gamepad", "keyboard"), default="spacemouse")
    teleop_node.add_argument("--namespace", default="robot")
    teleop_node.add_argument("--rate-hz", type=float, default=50.0)
    teleop_node.add_argument("--rotation", action="store_true", help="include rotation axes in the action")
    teleop_node.add_argument("--no-gripper", action="store_true", help="no gripper entry in the action")
    teleop_node.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    teleop_node.set_defaults(func=_cmd_teleop_node)

    profiles = sub.add_parser("profiles", help="list the shipped robot profiles")
    profiles.set_defaults(func=_cmd_profiles)

    up = sub.add_parser(
        "up", help="run a launch file's processes (sim training, real robot, teleop) without `ros2 launch`",
        description="Start every process of a ROS 2 XML launch file from launch/ (or a path), with name:=value "
                    "arguments, and stop them together. The same files run with `ros2 launch` where ROS 2 is "
                    "installed.",
        epilog="examples:\n  robot-rl up sim_train\n  robot-rl up sim_train task:=PegInsertion-v0 steps:=20000\n"
               "  robot-rl up real_train profile:=franka_fr3 --print",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("launch_file", help="a name in launch/ (sim_train, sim_actors, real_train, teleop) or a path")
    up.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    up.add_argument("--print", action="store_true", help="print the commands instead of running them")
    up.set_defaults(func=_cmd_up)

    from robot_rl.dataset_cli import add_dataset_parser
    from robot_rl.rewards.cli import add_rewards_parser

    add_dataset_parser(sub)
    add_rewards_parser(sub)

    keys = sub.add_parser("keys", help="generate CurveZMQ keys for a learner and its actors",
                          description="Write learner and actor key pairs (secret keys 0600) to DIR. Copy "
                                      "DIR to the actor machines; pass --keys DIR to both commands.")
    keys.add_argument("--out", required=True, metavar="DIR", help="directory for the keys")
    keys.set_defaults(func=_cmd_keys)

    tasks = sub.add_parser("tasks", help="list the simulated tasks with their observation and action spaces")
    tasks.set_defaults(func=_cmd_tasks)

    expert = sub.add_parser(
        "expert", help="run a task's scripted expert in simulation and report its success rate",
        description="Run the scripted expert of a simulated task (it also records demos and plays the "
                    "simulated human). Prints one line per episode and a JSON summary.",
    )
    expert.add_argument("--task", default="PickCube-v0", help="task id (see `robot-rl tasks`)")
    expert.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    expert.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    expert.add_argument("--obs-mode", choices=("state", "pixels"), default="state",
                        help="observation mode of the env (default state)")
    expert.add_argument("--noise", type=float, default=0.0,
                        help="std of Gaussian noise added to the expert's actions (default 0)")
    expert.add_argument("--video", metavar="PATH.mp4", help="write the front camera to this mp4 file")
    expert.set_defaults(func=_cmd_expert)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []  # for rclpy, untouched
    args = parser.parse_args(argv[:len(argv) - len(ros_args)])
    if ros_args:
        if not hasattr(args, "ros_args"):
            parser.error(f"--ros-args applies to ROS 2 nodes only, not `{args.command}`")
        args.ros_args = ros_args
    if getattr(args, "episodes", None) is not None and args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if getattr(args, "noise", 0.0) < 0:
        parser.error("--noise must be >= 0")
    from hardware.teleop import DeviceNotFound
    from robot_rl.transport import SecurityError, SpoolError, TransportError

    try:
        return args.func(args)
    except (ValueError, OSError, TransportError, SecurityError, SpoolError, DeviceNotFound) as err:
        # bad task id, config, address or keys: one clear line, no traceback
        print(f"robot-rl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robot-rl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
