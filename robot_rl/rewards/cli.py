"""`robot-rl rewards ...`: record labelled frames, train and evaluate success classifiers."""

from __future__ import annotations

import json


def _record(args) -> int:
    from robot_rl.rewards.frames import record_sim_frames

    data = record_sim_frames(args.task, args.episodes, args.image_size, tuple(args.cameras), args.seed)
    data.save(args.out)
    print(json.dumps({"frames": len(data), "positives": int(data.labels.sum()), "episodes": args.episodes,
                      "out": args.out}))
    return 0


def _train(args) -> int:
    import sys

    from robot_rl.rewards.classifier import ClassifierConfig, save_classifier, train_classifier
    from robot_rl.rewards.frames import FrameDataset

    data = FrameDataset.load(args.frames)
    model, report = train_classifier(data, ClassifierConfig(updates=args.updates, seed=args.seed),
                                     log=lambda text: print(text, file=sys.stderr))
    save_classifier(args.out, model, report)
    print(json.dumps({k: v for k, v in report.items() if k != "config"} | {"out": args.out}))
    return 0


def _evaluate(args) -> int:
    from robot_rl.rewards.classifier import load_classifier, metrics
    from robot_rl.rewards.frames import record_sim_frames

    labeler = load_classifier(args.model)
    model = labeler.model
    data = record_sim_frames(args.task, args.episodes, model.image_size, model.cameras, args.seed)
    if data.labels.all() or not data.labels.any():
        raise ValueError("the evaluation episodes gave only one class of frames: use more --episodes")
    probabilities = model.probabilities(data.images)
    result = metrics(probabilities, data.labels, labeler.threshold)
    print(json.dumps({"task": args.task, "frames": len(data), "positives": int(data.labels.sum()),
                      "threshold": labeler.threshold, **result}))
    return 0


def add_rewards_parser(sub) -> None:
    rewards = sub.add_parser("rewards", help="reward labelers: record labelled frames, train and evaluate "
                                             "success classifiers",
                             description="Success classifiers replace the reward function on a real robot. "
                                         "Train one on labelled frames, check it against the simulator's ground "
                                         "truth, then train with `robot-rl train --set reward_model=PATH`.")
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
    train.add_argument("--frames", required=True, metavar="FRAMES.npz")
    train.add_argument("--updates", type=int, default=1500)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, metavar="MODEL.pt")
    train.set_defaults(func=_train)
    evaluate = commands.add_parser("evaluate", help="a classifier against the simulator's ground truth on fresh episodes")
    evaluate.add_argument("--model", required=True, metavar="MODEL.pt")
    evaluate.add_argument("--task", default="PickCube-v0")
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=1000)
    evaluate.set_defaults(func=_evaluate)
