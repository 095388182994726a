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


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robot_rl.config import load_yaml, merge, parse_overrides
    from robot_rl.train import TrainConfig, Trainer

    values: dict = {}
    if args.resume:
        saved = Path(args.out or "") / "config.json"
        if not args.out or not saved.exists():
            raise ValueError("--resume needs --out DIR of an earlier run (with its config.json)")
        values = json.loads(saved.read_text())
    elif args.config:
        values = load_yaml(args.config)
    values = merge(values, parse_overrides(args.set or []))
    if args.out:
        values["out_dir"] = args.out
    cfg = TrainConfig.from_dict(values)
    print(f"robot-rl train: {cfg.task} ({cfg.obs_mode}), {cfg.total_env_steps} env steps, "
          f"UTD {cfg.agent.utd}, {cfg.num_demos if cfg.demo_path is None else cfg.demo_path} demos",
          file=sys.stderr)
    trainer = Trainer(cfg, resume=args.resume)
    result = trainer.run()
    final = result["evals"][-1] if result["evals"] else {}
    print(json.dumps({"env_steps": result["env_steps"], "updates": result["updates"],
                      "wall_s": round(result["wall_s"], 1), "final_success_rate": final.get("success_rate"),
                      "out_dir": trainer.cfg.out_dir}))
    return 0


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
        epilog="examples:\n  robot-rl train\n  robot-rl train --set task=PegInsertion-v0 num_demos=20\n"
               "  robot-rl train --config my_run.yaml --set agent.utd=8\n"
               "  robot-rl train --out runs/my_run --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="FILE.yaml", help="a YAML file of TrainConfig keys")
    train.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                       help="override config keys, nested with dots (agent.utd=8)")
    train.add_argument("--out", metavar="DIR",
                       help="run directory (default: the config's out_dir, else runs/<task>_<obs>_<time>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out DIR from its last checkpoint")
    train.set_defaults(func=_cmd_train)

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
    args = parser.parse_args(argv)
    if getattr(args, "episodes", 1) < 1:
        parser.error("--episodes must be >= 1")
    if getattr(args, "noise", 0.0) < 0:
        parser.error("--noise must be >= 0")
    try:
        return args.func(args)
    except ValueError as err:  # bad task id or config: one clear line, no traceback
        print(f"robot-rl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
