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
        "train", help="train a policy in simulation or any gymnasium env (default: pick-cube from state)",
        description="Train an agent (agent.name: sac (default, RLPD recipe), crossq, bc, iql, calql, distill) in "
                    "a project task or any gymnasium env (env.id). With no arguments it runs the embedded "
                    "default: PickCube-v0 from state, 10 scripted-expert demos, SAC at UTD 4, 10,000 env steps, "
                    "evaluated deterministically every 1,000 steps. Writes config.json, checkpoints, TensorBoard "
                    "logs, eval.jsonl and learning_curve.png to the run directory.",
        epilog="examples:\n  robot-rl train\n  robot-rl train --set env.id=PegInsertion-v0 num_demos=20\n"
               "  robot-rl train --set agent.name=crossq\n"
               "  robot-rl train --set env.id=InvertedPendulum-v5 num_demos=0\n"
               "  robot-rl train --set env.id=my_pkg:MyEnv-v0 demo_policy=my_pkg:expert\n"
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

    from robot_rl.dataset_cli import add_dataset_parser
    from robot_rl.rewards.cli import add_rewards_parser
    from robot_rl.robot_cli import add_robot_parsers

    add_robot_parsers(sub)
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
