"""Success classifier (HIL-SERL's reward on real robots): a small conv net on the task's cameras, BCE
on class-balanced batches with DrQ random-shift augmentation, the decision threshold calibrated on
held-out episodes, then k-frame hysteresis online.

    data = record_sim_frames("PickCube-v0", 60)            # or frames labelled by an operator
    model, report = train_classifier(data, ClassifierConfig())
    save_classifier("success.pt", model, report)
    labeler = load_classifier("success.pt")                # a robot_rl.rewards.Labeler
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.networks import ConvEncoder
from robot_rl.rewards.base import Hysteresis, Label, Labeler
from robot_rl.rewards.checkpoints import load_model, save_model
from robot_rl.rewards.frames import FrameDataset

FORMAT = "robot_rl.success_classifier/1"


@dataclass(frozen=True)
class ClassifierConfig:
    updates: int = 1500
    batch_size: int = 64  # half positive, half negative
    lr: float = 3e-4
    feature_dim: int = 50
    augment_pad: int = 4
    val_fraction: float = 0.25  # of the episodes
    seed: int = 0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("updates", "batch_size", "feature_dim", "torch_threads"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"ClassifierConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"ClassifierConfig.val_fraction must be in (0, 1), got {self.val_fraction}")


class SuccessClassifier(nn.Module):
    def __init__(self, cameras: tuple[str, ...], image_size: int, feature_dim: int = 50):
        super().__init__()
        self.cameras, self.image_size = tuple(cameras), image_size
        self.encoder = ConvEncoder(self.cameras, image_size, feature_dim)
        self.head = nn.Sequential(nn.Linear(self.encoder.out_features, 256), nn.ReLU(), nn.Linear(256, 1))

    def forward(self, images: dict[str, torch.Tensor], augment_pad: int = 0) -> torch.Tensor:
        """uint8 (N, H, W, 3) per camera -> success logits (N,)."""
        return self.head(self.encoder(images, augment_pad)).squeeze(-1)

    @torch.no_grad()
    def probabilities(self, images: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
        self.eval()
        n = len(next(iter(images.values())))
        out = [torch.sigmoid(self({c: torch.from_numpy(images[c][i:i + batch]) for c in self.cameras})).numpy()
               for i in range(0, n, batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative
    (ties count half)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs both positive and negative examples")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def decision_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, precision and recall of success decisions (precision/recall 1 when undefined)."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels, bool)
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    return {"accuracy": float(np.mean(predicted == labels)),
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0}


def metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    return {**decision_metrics(probabilities >= threshold, labels), "auroc": auroc(probabilities, labels)}


def calibrate_threshold(probabilities: np.ndarray, labels: np.ndarray, beta: float = 0.5,
                        floor: float = 0.5) -> float:
    """The threshold with the best F-beta on held-out frames (beta 0.5 weighs precision twice: a false
    success ends an episode and pays the policy for failing, which RL then seeks out), never below
    `floor`; among equals, the highest."""
    best, best_score = floor, -1.0
    for threshold in np.unique(np.concatenate([probabilities, [floor]])):
        if threshold < floor:
            continue
        m = metrics(probabilities, labels, threshold)
        p, r = m["precision"], m["recall"]
        score = (1 + beta**2) * p * r / max(beta**2 * p + r, 1e-12)
        if score >= best_score:
            best, best_score = float(threshold), score
    return best


def train_classifier(data: FrameDataset, cfg: ClassifierConfig = ClassifierConfig(), log=None):
    """Train on all but `val_fraction` of the episodes; calibrate and report on those held out.
    Returns (model, report)."""
    if data.labels.all() or not data.labels.any():
        raise ValueError("the frame dataset needs both success and failure frames to train a classifier")
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    episodes = np.unique(data.episode)
    val_episodes = rng.choice(episodes, size=max(1, round(len(episodes) * cfg.val_fraction)), replace=False)
    is_val = np.isin(data.episode, val_episodes)
    train, val = data.subset(~is_val), data.subset(is_val)
    if not (train.labels.any() and (~train.labels).any() and val.labels.any() and (~val.labels).any()):
        raise ValueError("both the training and the held-out episodes need success and failure frames: record more episodes")
    size = next(iter(data.images.values())).shape[1]
    model = SuccessClassifier(data.cameras, size, cfg.feature_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    positives, negatives = np.flatnonzero(train.labels), np.flatnonzero(~train.labels)
    half = cfg.batch_size // 2
    started = time.monotonic()
    model.train()
    for update in range(cfg.updates):
        index = np.concatenate([rng.choice(positives, half), rng.choice(negatives, cfg.batch_size - half)])
        images = {c: torch.from_numpy(train.images[c][index]) for c in data.cameras}
        target = torch.from_numpy(train.labels[index].astype(np.float32))
        loss = F.binary_cross_entropy_with_logits(model(images, cfg.augment_pad), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log is not None and (update + 1) % 250 == 0:
            log(f"update {update + 1}/{cfg.updates}: loss {loss.item():.4f}")
    probabilities = model.probabilities(val.images)
    threshold = calibrate_threshold(probabilities, val.labels)
    report = {"task": data.task, "cameras": list(data.cameras), "image_size": size, "threshold": threshold,
              **{f"val_{k}": v for k, v in metrics(probabilities, val.labels, threshold).items()},
              "val_frames": len(val), "val_positives": int(val.labels.sum()), "train_frames": len(train),
              "train_positives": int(train.labels.sum()), "train_s": time.monotonic() - started,
              "config": dataclasses.asdict(cfg)}
    return model, report


def save_classifier(path: str | Path, model: SuccessClassifier, report: dict) -> Path:
    return save_model(path, {"format": FORMAT, "state": model.state_dict(), "cameras": list(model.cameras),
                             "image_size": model.image_size, "feature_dim": report["config"]["feature_dim"],
                             "report": report})


class ClassifierLabeler(Labeler):
    """A trained success classifier as a Labeler: success once the probability has stayed at or above
    the threshold for `hysteresis` consecutive frames (one noisy frame must not end an episode), and
    optionally only while `state_guard(observation)` holds. Reward 1 on success, else 0."""

    name = "classifier"

    def __init__(self, model: SuccessClassifier, threshold: float, hysteresis: int = 1, state_guard=None):
        self.model, self.threshold, self.state_guard = model, threshold, state_guard
        self.cameras, self.image_size = tuple(model.cameras), model.image_size
        self.hysteresis = Hysteresis(hysteresis)

    def reset(self) -> None:
        self.hysteresis.reset()

    def label(self, images: dict[str, np.ndarray], task: str = "", observation=None) -> Label:
        missing = [c for c in self.model.cameras if c not in images]
        if missing:
            raise ValueError(f"the classifier needs cameras {list(self.model.cameras)}; missing {missing}")
        batch = {c: np.asarray(images[c], np.uint8)[None] for c in self.model.cameras}
        for c, frame in batch.items():
            if frame.shape[1:] != (self.model.image_size, self.model.image_size, 3):
                raise ValueError(f"camera {c}: the classifier takes {self.model.image_size}x{self.model.image_size} "
                                 f"RGB frames, got {frame.shape[1:]}")
        probability = float(self.model.probabilities(batch)[0])
        success = self.hysteresis.update(probability >= self.threshold)
        if success and self.state_guard is not None and observation is not None:
            success = bool(self.state_guard(observation))
        return Label(reward=float(success), success=success, confidence=probability)


def load_classifier(path: str | Path, hysteresis: int = 1, threshold: float | None = None,
                    payload: dict | None = None) -> ClassifierLabeler:
    payload = load_model(path, FORMAT, "success classifier", "robot-rl rewards train-classifier", payload)
    model = SuccessClassifier(tuple(payload["cameras"]), payload["image_size"], payload["feature_dim"])
    model.load_state_dict(payload["state"])
    labeler = ClassifierLabeler(model, payload["report"]["threshold"] if threshold is None else threshold, hysteresis)
    labeler.report = payload["report"]
    return labeler
