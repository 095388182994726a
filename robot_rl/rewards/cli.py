"""`robot-rl rewards ...`: record labelled frames, train and evaluate reward labelers, relabel stored
episodes, and serve a labeler as the ROS 2 reward node."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

MODEL_HELP = ("PATH.pt (success classifier or preference model), clip:MODEL (CLIP/SigLIP directory or hub id), "
              "vlm:MODEL (local VLM) or vlm:http://HOST:PORT/v1#NAME (OpenAI-compatible server)")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def _labeler(args):
    from robot_rl.rewards.factory import RewardModelConfig, make_labeler

    cfg = RewardModelConfig(model=args.model, prompt=args.prompt, cameras=tuple(args.cameras or ()),
                            threshold=args.threshold, hysteresis=args.hysteresis, cache=args.cache)
    return make_labeler(cfg)


def _queries(args):
    from robot_rl.rewards.vlm import QueryCache, VLMQueries, make_backend

    spec = args.model.removeprefix("vlm:")
    return VLMQueries(make_backend(spec), QueryCache(args.cache))


def _record(args) -> int:
    from robot_rl.rewards.frames import record_sim_frames

    data = record_sim_frames(args.task, args.episodes, args.image_size, tuple(args.cameras), args.seed)
    data.save(args.out)
    print(json.dumps({"frames": len(data), "positives": int(data.labels.sum()), "episodes": args.episodes,
                      "out": args.out}))
    return 0


def _train(args) -> int:
    from robot_rl.rewards.classifier import ClassifierConfig, save_classifier, train_classifier
    from robot_rl.rewards.frames import FrameDataset

    data = FrameDataset.concat(*[FrameDataset.load(path) for path in args.frames])
    model, report = train_classifier(data, ClassifierConfig(updates=args.updates, seed=args.seed), log=_stderr)
    save_classifier(args.out, model, report)
    print(json.dumps({k: v for k, v in report.items() if k != "config"} | {"out": args.out}))
    return 0


def evaluate_labeler(labeler, frames, task: str) -> dict:
    """A labeler against labelled frames, episode by episode (so hysteresis acts as it would online):
    AUROC of its score (probability where it has one, else reward), precision/recall of its successes,
    and its throughput."""
    from robot_rl.rewards.classifier import auroc, decision_metrics

    scores, predicted = np.zeros(len(frames)), np.zeros(len(frames), bool)
    no_labels = 0
    started = time.perf_counter()
    for episode in np.unique(frames.episode):
        labeler.reset()
        for i in np.flatnonzero(frames.episode == episode):
            label = labeler.label({c: frames.images[c][i] for c in frames.cameras}, task)
            if label is None:
                no_labels += 1
                continue
            scores[i] = label.confidence if label.confidence is not None else label.reward
            predicted[i] = label.success
    elapsed = time.perf_counter() - started
    return {"frames": len(frames), "positives": int(frames.labels.sum()), "auroc": auroc(scores, frames.labels),
            **decision_metrics(predicted, frames.labels), "no_labels": no_labels,
            "frames_per_s": len(frames) / max(elapsed, 1e-9), "ms_per_frame": 1000 * elapsed / max(len(frames), 1)}


def _evaluate(args) -> int:
    from robot_rl.rewards.base import instruction_for
    from robot_rl.rewards.frames import record_sim_frames

    labeler = _labeler(args)
    size = args.image_size or labeler.image_size or 64
    cameras = labeler.cameras or ("front",)
    data = record_sim_frames(args.task, args.episodes, size, cameras, args.seed)
    if data.labels.all() or not data.labels.any():
        raise ValueError("the evaluation episodes gave only one class of frames: use more --episodes")
    result = evaluate_labeler(labeler, data, instruction_for(args.prompt or args.task))
    print(json.dumps({"task": args.task, "model": args.model, "threshold": labeler.threshold,
                      **result}))
    return 0


def _preferences(args) -> int:
    from robot_rl.rewards.base import instruction_for
    from robot_rl.rewards.frames import FrameDataset
    from robot_rl.rewards.preference import collect_preferences

    frames = FrameDataset.load(args.frames)
    queries = _queries(args)
    prefs = collect_preferences(queries, frames, instruction_for(args.prompt or frames.task), args.pairs,
                                args.camera, args.seed)
    prefs.save(args.out)
    print(json.dumps({"pairs": len(prefs.first), "asked": args.pairs, "cache_hits": queries.cache.hits,
                      "source": prefs.source, "out": args.out}))
    return 0


def _train_preference(args) -> int:
    from robot_rl.rewards.frames import FrameDataset
    from robot_rl.rewards.preference import (
        PreferenceConfig,
        Preferences,
        save_preference_reward,
        train_preference_reward,
    )

    frames, prefs = FrameDataset.load(args.frames), Preferences.load(args.preferences)
    model, report = train_preference_reward(frames, prefs, PreferenceConfig(updates=args.updates, seed=args.seed,
                                                                            ensemble=args.ensemble),
                                            camera=args.camera, log=_stderr)
    save_preference_reward(args.out, model, report)
    print(json.dumps({k: v for k, v in report.items() if k != "config"} | {"out": args.out}))
    return 0


def _relabel(args) -> int:
    from robot_rl.episodes import episode_files, read_metadata
    from robot_rl.rewards.base import instruction_for
    from robot_rl.rewards.relabel import relabel_directory

    if args.progress:
        from robot_rl.rewards.vlm import VLMProgress

        labeler = VLMProgress(_queries(args), camera=(args.cameras or ["front"])[0], max_frames=args.max_frames)
    else:
        labeler = _labeler(args)
    files = episode_files(args.episodes_dir)
    if not files:
        raise ValueError(f"no episode files in {args.episodes_dir}")
    task = instruction_for(args.prompt or read_metadata(files[0])["task"])
    summary = relabel_directory(args.episodes_dir, args.out, labeler, task, log_fn=_stderr if args.verbose else None)
    print(json.dumps(summary))
    return 0


def _serve(args) -> int:
    from hardware.ros.runtime import run_node
    from robot_rl.rewards.base import instruction_for
    from robot_rl.ros.reward_node import RewardNode

    labeler = _labeler(args)
    cameras = tuple(args.cameras or labeler.cameras or ("front",))
    task = instruction_for(args.prompt or args.task)
    run_node(lambda context: RewardNode(labeler, task, cameras, namespace=args.namespace, context=context),
             domain_id=args.domain_id, duration_s=args.duration)
    return 0


def _model_args(parser, required: bool = True) -> None:
    parser.add_argument("--model", required=required, metavar="SPEC", help=MODEL_HELP)
    parser.add_argument("--prompt", help="the task sentence (default: the task's own instruction)")
    parser.add_argument("--cameras", nargs="+", help="cameras the labeler reads (default: the model's, else front)")
    parser.add_argument("--threshold", type=float, help="success threshold (default: the model's calibrated one)")
    parser.add_argument("--hysteresis", type=int, default=1, help="frames above the threshold before success")
    parser.add_argument("--cache", metavar="FILE.sqlite", help="reuse VLM answers across runs")


def add_rewards_parser(sub) -> None:
    rewards = sub.add_parser("rewards", help="reward labelers: success classifiers, CLIP/VLM rewards, preference "
                                             "models; relabel episodes; serve a labeler on ROS 2",
                             description="On a real robot a labeler replaces the reward function. Train or pick one, "
                                         "check it against the simulator's ground truth, then train with "
                                         "`robot-rl train --set reward.model=SPEC`. " + "SPEC: " + MODEL_HELP + ".")
    commands = rewards.add_subparsers(dest="rewards_command", metavar="COMMAND", required=True)

    record = commands.add_parser("record-frames", help="sim frames labelled with ground-truth success")
    record.add_argument("--task", default="PickCube-v0")
    record.add_argument("--episodes", type=int, default=60)
    record.add_argument("--image-size", type=int, default=64)
    record.add_argument("--cameras", nargs="+", default=["front", "wrist"])
    record.add_argument("--seed", type=int, default=0)
    record.add_argument("--out", required=True, metavar="FRAMES.npz")
    record.set_defaults(func=_record)

    train = commands.add_parser("train-classifier", help="train a success classifier; calibrate its threshold "
                                                         "on held-out episodes; print AUROC/precision/recall")
    train.add_argument("--frames", required=True, nargs="+", metavar="FRAMES.npz",
                       help="one or more frame files, e.g. recorded frames plus a run's reward_frames.npz "
                            "(the frames the last classifier judged, with their true labels)")
    train.add_argument("--updates", type=int, default=1500)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, metavar="MODEL.pt")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="any labeler against the simulator's ground truth on fresh "
                                                    "episodes: AUROC, precision, recall, frames/s")
    _model_args(evaluate)
    evaluate.add_argument("--task", default="PickCube-v0")
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--image-size", type=int, help="frame size (default: the model's, else 64)")
    evaluate.add_argument("--seed", type=int, default=1000)
    evaluate.set_defaults(func=_evaluate)

    prefs = commands.add_parser("preferences", help="ask a VLM which of two frames shows more progress (RL-VLM-F)")
    prefs.add_argument("--model", required=True, metavar="SPEC", help="vlm:MODEL or vlm:http://HOST/v1#NAME")
    prefs.add_argument("--frames", required=True, metavar="FRAMES.npz")
    prefs.add_argument("--pairs", type=int, default=1000)
    prefs.add_argument("--camera", help="default: the first camera of the frames")
    prefs.add_argument("--prompt", help="the task sentence (default: the task's own instruction)")
    prefs.add_argument("--cache", metavar="FILE.sqlite")
    prefs.add_argument("--seed", type=int, default=0)
    prefs.add_argument("--out", required=True, metavar="PREFS.npz")
    prefs.set_defaults(func=_preferences)

    train_pref = commands.add_parser("train-preference", help="a Bradley-Terry reward ensemble from preferences")
    train_pref.add_argument("--frames", required=True, metavar="FRAMES.npz")
    train_pref.add_argument("--preferences", required=True, metavar="PREFS.npz")
    train_pref.add_argument("--camera")
    train_pref.add_argument("--updates", type=int, default=1000)
    train_pref.add_argument("--ensemble", type=int, default=3)
    train_pref.add_argument("--seed", type=int, default=0)
    train_pref.add_argument("--out", required=True, metavar="MODEL.pt")
    train_pref.set_defaults(func=_train_preference)

    relabel = commands.add_parser("relabel", help="copy a directory of episodes with a labeler's rewards "
                                                  "(resumable; provenance in each file and relabel.json)")
    _model_args(relabel)
    relabel.add_argument("--episodes-dir", required=True, metavar="DIR", help="the episode files to relabel")
    relabel.add_argument("--out", required=True, metavar="DIR")
    relabel.add_argument("--progress", action="store_true",
                         help="dense progress rewards from a VLM (GVL) instead of per-frame labels")
    relabel.add_argument("--max-frames", type=int, default=12, help="frames per progress query")
    relabel.add_argument("--verbose", action="store_true")
    relabel.set_defaults(func=_relabel)

    serve = commands.add_parser("serve", help="the ROS 2 reward node: a labeler's reward and success on a robot's "
                                              "topics, from its camera images")
    _model_args(serve)
    serve.add_argument("--task", default="PickCube-v0", help="task id or sentence (with no --prompt)")
    serve.add_argument("--namespace", default="robot")
    serve.add_argument("--domain-id", type=int)
    serve.add_argument("--duration", type=float, help="stop after this many seconds")
    serve.set_defaults(func=_serve)
