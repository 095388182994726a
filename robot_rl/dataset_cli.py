"""`robot-rl dataset ...`: list, inspect, merge, split, render and export episode directories, and record
scripted-expert demos into one.

The main CLI hooks these in with `add_dataset_parser(subparsers)`; `python -m robot_rl.dataset_cli
COMMAND ...` runs them on their own. Bad input gives one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

PROG = "robot-rl dataset"


def _print_json(value) -> None:
    print(json.dumps(value, indent=2))


def _fmt_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


# -- commands ------------------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    from robot_rl.datasets import list_episodes

    rows = list_episodes(args.directory)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no episodes in {args.directory}")
        return 0
    print(f"{'FILE':<48} {'TASK':<18} {'ACTOR':<12} {'STEPS':>5} {'SUCCESS':>7} {'INTERV':>6} "
          f"{'REWARD':>8}")
    for r in rows:
        success = "-" if r["success"] is None else ("yes" if r["success"] else "no")
        if r["operator_label"]:
            success += "*"  # a human labelled it (operator_label)
        print(f"{r['file']:<48} {r['task']:<18} {r['actor_id']:<12} {r['length']:>5} {success:>7} "
              f"{r['interventions']:>6} {r['reward_sum']:>8.2f}")
    steps = sum(r["length"] for r in rows)
    successes = sum(1 for r in rows if r["success"])
    print(f"{len(rows)} episodes, {steps} steps, {successes} successful, "
          f"{sum(r['interventions'] for r in rows)} intervention steps")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from robot_rl.datasets import inspect_episode

    info = inspect_episode(args.file)
    if args.json:
        _print_json(info)
        return 0
    meta, summary = info["meta"], info["summary"]
    print(f"file:     {info['file']} ({_fmt_size(info['size_bytes'])}, "
          f"format_version {meta['format_version']})")
    print(f"task:     {meta['task']}   actor: {meta['actor_id']}   robot_profile: {meta['robot_profile']}")
    print(f"episode:  {meta['episode_id']}   created {meta['created']}")
    print(f"policy:   version {meta['policy_version']}   seed {meta['seed']}")
    print(f"outcome:  {summary['steps']} steps, {summary['ended']}   success {meta['success']}   "
          f"operator_label {meta['operator_label']}")
    rate = f" ({summary['steps_per_s']:.1f} steps/s)" if summary["steps_per_s"] else ""
    print(f"steps:    reward sum {summary['reward_sum']:.3f}   interventions {summary['interventions']}   "
          f"gripper toggles {summary['gripper_toggles']}   duration {summary['duration_s']:.2f} s{rate}")
    print("rewards:  " + ", ".join(f"{k} x{v}" for k, v in summary["reward_sources"].items()))
    if meta["extra"]:
        print(f"extra:    {json.dumps(meta['extra'])}")
    print("arrays:")
    for key, a in info["arrays"].items():
        if "true" in a:
            stats = f"true {a['true']}"
        elif key == "timestamp":  # seconds since the epoch: show when, not min/max of 1.7e9
            start = datetime.fromtimestamp(a["min"], UTC).isoformat(timespec="milliseconds")
            stats = f"from {start}, span {a['max'] - a['min']:.3f} s"
        else:
            stats = f"min {a['min']:.4g}  max {a['max']:.4g}  mean {a['mean']:.4g}"
        print(f"  {key:<24} {a['dtype']:<8} {tuple(a['shape'])!s:<20} {stats}")
        if "per_dim" in a and key in ("action", "policy_action"):
            d = a["per_dim"]
            print(f"  {'':<24} per dim: mean {d['mean']}  std {d['std']}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from robot_rl.datasets import merge

    result = merge(args.sources, args.out)
    print(f"merged into {args.out}: {result['copied']} episodes copied, {result['duplicates']} duplicates "
          f"skipped")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from robot_rl.datasets import split

    result = split(args.source, args.out_a, args.out_b, fraction=args.fraction, seed=args.seed)
    print(f"split {args.source}: {len(result['a'])} episodes -> {args.out_a}, "
          f"{len(result['b'])} -> {args.out_b}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from robot_rl.datasets import render

    out = render(args.file, args.out, camera=args.camera, fps=args.fps)
    print(f"wrote {out} ({_fmt_size(Path(out).stat().st_size)})")
    return 0


def _cmd_export_lerobot(args: argparse.Namespace) -> int:
    from robot_rl.lerobot_export import export_lerobot

    result = export_lerobot(args.source, args.out, fps=args.fps)
    print(f"exported {result['episodes']} episodes ({result['frames']} frames, cameras "
          f"{result['cameras'] or 'none'}) to {result['dest']} (LeRobotDataset v2.1)")
    return 0


def _proprio_names() -> list[str]:
    from sim.tasks.base import PROPRIO_LAYOUT

    names = []
    for name, size in PROPRIO_LAYOUT:
        names += [name] if size == 1 else [f"{name}.{axis}" for axis in "xyz"[:size]] if size <= 3 else \
            [f"{name}.{i}" for i in range(size)]
    return names


def _cmd_record_demos(args: argparse.Namespace) -> int:
    import numpy as np

    import sim
    from robot_rl.recording import EpisodeRecorder
    from robot_rl.rollout import episode_steps
    from sim.experts import expert_for

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    task = args.task.split("/", 1)[-1]
    config = {"obs_mode": args.obs_mode}
    if args.obs_mode == "pixels":
        config["image_size"] = args.image_size
    env = sim.make(task, **config)
    try:
        expert = expert_for(task, env, noise_std=args.noise, rng=np.random.default_rng(args.seed))
        extra = {"source": "scripted_expert", "expert": type(expert).__name__, "noise_std": args.noise,
                 "obs_mode": args.obs_mode, "control_hz": env.config.control_hz,
                 "action_names": list(env.metadata["action_names"]), "proprio_names": _proprio_names()}
        if args.obs_mode == "pixels":
            extra["image_size"] = args.image_size
        recorder = EpisodeRecorder(args.out, task=task, actor_id=args.actor_id, default_reward_source="sim",
                                   extra=extra, keep_failures=args.keep_failures)
        proposed: list[np.ndarray] = []  # what the expert asked for (the env may execute something else)

        def expert_behaviour(obs):
            proposed.append(expert.act(obs))
            return proposed[-1], False

        recorded = attempt = 0
        while recorded < args.episodes:
            if attempt >= 3 * args.episodes + 10:
                raise RuntimeError(f"the scripted expert succeeded in only {recorded} of {attempt} episodes")
            seed = args.seed + attempt
            obs, _ = env.reset(seed=seed)
            expert.reset()
            recorder.start(obs, seed=seed)
            path = None
            for step in episode_steps(env, expert_behaviour, obs):
                path = recorder.step(proposed[-1], step.reward, step.next_obs, step.terminated, step.truncated,
                                     step.info)
            attempt += 1
            outcome = "success" if step.info["success"] else "failure"
            if path is None:
                print(f"seed {seed:6d}  steps {step.index + 1:3d}  {outcome}  (discarded: demos keep successes; "
                      f"--keep-failures keeps all)")
                continue
            recorded += 1
            print(f"seed {seed:6d}  steps {step.index + 1:3d}  {outcome}  {path}")
    finally:
        env.close()
    print(json.dumps({"task": task, "recorded": recorded, "attempts": attempt, "out": str(args.out)}))
    return 0


# -- parser --------------------------------------------------------------------------------------------
def _guarded(func):
    """Expected failures (bad paths, refused merges, corrupt files, missing pyarrow) -> one line, exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ValueError, OSError, ImportError, RuntimeError) as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 2

    return run


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _command(sub, name: str, func, short: str, description: str, example: str | None = None):
    """A sub-command whose description is wrapped by hand: the raw formatter, which keeps the
    example's line breaks, would not wrap it."""
    parser = sub.add_parser(name, help=short, description=textwrap.fill(description, 88),
                            epilog=f"example:\n  {example}" if example else None,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=_guarded(func))
    return parser


def _add_commands(sub) -> None:
    p = _command(
        sub, "list", _cmd_list, "one line per episode of a directory (task, actor, steps, success, ...)",
        "List the episode files of DIR, oldest first: task, actor, steps, success (* = labelled by an "
        "operator), intervention steps and reward sum. Reads only metadata and small arrays, never the "
        "images.", "robot-rl dataset list demos/")
    p.add_argument("directory", metavar="DIR", help="directory of episode .npz files")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = _command(
        sub, "inspect", _cmd_inspect, "one episode: metadata, arrays with shapes/dtypes/statistics",
        "Show one episode file: its metadata, every array's shape, dtype and statistics, and a per-step "
        "summary (rewards and their sources, interventions, gripper toggles, duration).")
    p.add_argument("file", metavar="FILE", help="an episode .npz file")
    p.add_argument("--json", action="store_true", help="print everything as JSON")

    p = _command(
        sub, "merge", _cmd_merge, "copy the episodes of several directories into one",
        "Copy the episodes of SRC directories into --out (created if needed; nothing there is "
        "overwritten). Refuses to mix tasks or observation/action specs; skips episodes already present "
        "(same episode_id).", "robot-rl dataset merge robot1/ robot2/ --out all/")
    p.add_argument("sources", metavar="SRC", nargs="+", help="episode directories")
    p.add_argument("--out", metavar="DIR", required=True, help="destination directory")

    p = _command(
        sub, "split", _cmd_split, "split episodes into two directories (e.g. train/validation)",
        "Split the episodes of SRC by episode into --out-a (a FRACTION of them, rounded) and --out-b (the "
        "rest). The same files, fraction and seed always give the same split. Files are copied; SRC is "
        "untouched.", "robot-rl dataset split demos/ --out-a train/ --out-b val/ --fraction 0.8 --seed 0")
    p.add_argument("source", metavar="SRC", help="episode directory")
    p.add_argument("--out-a", metavar="DIR", required=True, help="gets FRACTION of the episodes")
    p.add_argument("--out-b", metavar="DIR", required=True, help="gets the rest")
    p.add_argument("--fraction", type=_fraction, default=0.8,
                   help="share of episodes for --out-a (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle (default 0)")

    p = _command(
        sub, "render", _cmd_render, "write an episode's camera images as an mp4 or gif",
        "Write the camera images of an episode (every observation, the final one included) to an .mp4 "
        "(mp4v) or .gif file. Without --camera all cameras play side by side.",
        "robot-rl dataset render demos/20250101T120000.000000Z_expert_1a2b3c4d.npz --out ep.mp4 "
        "--camera front")
    p.add_argument("file", metavar="FILE", help="an episode .npz file recorded from pixels")
    p.add_argument("--out", metavar="OUT.mp4|OUT.gif", required=True, help="video file to write")
    p.add_argument("--camera", help="one camera (e.g. front, wrist); default: all side by side")
    p.add_argument("--fps", type=_positive_float, default=10.0, help="frames per second (default 10)")

    p = _command(
        sub, "export-lerobot", _cmd_export_lerobot, "export a directory to the LeRobotDataset v2.1 layout",
        "Export the episodes of SRC to a LeRobotDataset v2.1 directory (parquet data, mp4 videos, "
        "meta/*.json[l]) that LeRobot and HIL-SERL tools load. One row per step; the final observation of "
        "each episode is not exported. --out must not exist or be empty. Needs pyarrow: pip install "
        "robot_rl[data].", "robot-rl dataset export-lerobot demos/ --out lerobot/pick_cube")
    p.add_argument("source", metavar="SRC", help="episode directory")
    p.add_argument("--out", metavar="DIR", required=True, help="new dataset directory")
    p.add_argument("--fps", type=_positive_float, default=10.0,
                   help="frame rate of the episodes (default 10, the simulator's control rate)")

    p = _command(
        sub, "record-demos", _cmd_record_demos, "record scripted-expert demos in simulation as episode files",
        "Run a task's scripted expert in simulation and save each successful episode as an episode file "
        "(reward_source 'sim') until --episodes are recorded. Attempt i uses seed --seed + i.",
        "robot-rl dataset record-demos --task PickCube-v0 --episodes 20 --out demos/ --obs-mode pixels "
        "--image-size 64")
    p.add_argument("--task", default="PickCube-v0",
                   help="task id (see `robot-rl tasks`; default PickCube-v0)")
    p.add_argument("--episodes", type=int, default=10, help="successful episodes to record (default 10)")
    p.add_argument("--out", metavar="DIR", required=True, help="episode directory (created if needed)")
    p.add_argument("--obs-mode", choices=("state", "pixels"), default="state",
                   help="observation mode (default state)")
    p.add_argument("--image-size", type=int, default=128, help="camera image size for pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise on the expert's actions")
    p.add_argument("--actor-id", default="expert",
                   help="actor id in the metadata and file names (default expert)")
    p.add_argument("--keep-failures", action="store_true",
                   help="also save episodes where the expert failed (they do not count towards --episodes)")


def add_dataset_parser(subparsers) -> argparse.ArgumentParser:
    """Add `dataset` with its sub-commands to the main CLI's subparsers; returns its parser. Each
    command's `func(args)` returns the exit code (2 with one line on stderr for bad input)."""
    parser = subparsers.add_parser(
        "dataset", help="episode files: list, inspect, merge, split, render, export to LeRobot, record demos",
        description=textwrap.fill(
            "Work with directories of episode files (one .npz per episode, docs/episodes.md): list and "
            "inspect them, merge and split them, render their cameras to video, export them to the "
            "LeRobotDataset v2.1 layout, and record scripted-expert demos.", 88),
        epilog="examples:\n  robot-rl dataset record-demos --task PickCube-v0 --episodes 10 --out demos/\n"
               "  robot-rl dataset list demos/\n  robot-rl dataset export-lerobot demos/ --out lerobot/pick",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_commands(parser.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True))
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m robot_rl.dataset_cli",
        description="The `robot-rl dataset` commands on their own: episode files (one .npz per episode).",
    )
    _add_commands(parser.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
