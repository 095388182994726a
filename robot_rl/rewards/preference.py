"""A reward model learned from pairwise preferences over camera frames (RL-VLM-F: a VLM says which of
two images shows more progress; a Bradley-Terry model turns those answers into a per-frame reward).

    prefs = collect_preferences(VLMQueries(backend), frames, "insert the peg", pairs=2000)
    model, report = train_preference_reward(frames, prefs)
    save_preference_reward("pref.pt", model, report); labeler = load_preference_reward("pref.pt")

The model is an ensemble of small conv nets, each trained on its own bootstrap of the pairs with
P(i > j) = sigmoid(r(i) - r(j)) against the VLM's probability; the reward is the ensemble mean,
standardised over the training frames. Pairs the VLM is unsure about (|P - 0.5| < skip_margin) are
dropped, as RL-VLM-F drops "no preference" answers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.files import atomic_write
from robot_rl.networks import ConvEncoder
from robot_rl.rewards.base import Label, Labeler
from robot_rl.rewards.checkpoints import load_model, save_model
from robot_rl.rewards.frames import FrameDataset

log = logging.getLogger(__name__)
FORMAT = "robot_rl.preference_reward/1"


@dataclass
class Preferences:
    """Answers about pairs of frames of one FrameDataset: P(first shows more progress than second)."""

    first: np.ndarray  # int (M,) frame indices
    second: np.ndarray
    p_first: np.ndarray  # float (M,)
    source: str = ""  # which model answered

    def save(self, path: str | Path) -> Path:
        arrays = dict(first=self.first, second=self.second, p_first=self.p_first, source=np.array(self.source))
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Preferences:
        try:
            with np.load(path) as data:
                return cls(data["first"], data["second"], data["p_first"], str(data["source"]))
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"cannot read preferences from {path}: {err}") from err


def collect_preferences(queries, frames: FrameDataset, task: str, pairs: int, camera: str | None = None,
                        seed: int = 0) -> Preferences:
    """Ask about `pairs` random pairs of distinct frames of one camera; unanswerable pairs are skipped."""
    from robot_rl.rewards.vlm import VLMError

    camera = camera or frames.cameras[0]
    if camera not in frames.images:
        raise ValueError(f"camera {camera!r} is not in the frames ({list(frames.cameras)})")
    rng = np.random.default_rng(seed)
    images = frames.images[camera]
    first, second, p_first, skipped = [], [], [], 0
    for _ in range(pairs):
        i, j = rng.choice(len(frames), size=2, replace=False)
        try:
            p = queries.prefer(images[i], images[j], task)
        except VLMError as err:
            skipped += 1
            log.warning("preference %d/%d skipped: %s", i, j, err)
            continue
        first.append(i), second.append(j), p_first.append(p)
    if skipped:
        log.warning("%d of %d preference queries gave no answer", skipped, pairs)
    return Preferences(np.array(first, np.int64), np.array(second, np.int64), np.array(p_first, np.float64),
                       queries.backend.name)


@dataclass(frozen=True)
class PreferenceConfig:
    ensemble: int = 3
    updates: int = 1000
    batch_size: int = 64  # pairs
    lr: float = 3e-4
    feature_dim: int = 50
    augment_pad: int = 4
    skip_margin: float = 0.1
    val_fraction: float = 0.2  # of the pairs, for the held-out agreement
    seed: int = 0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("ensemble", "updates", "batch_size", "feature_dim", "torch_threads"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"PreferenceConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.skip_margin < 0.5:
            raise ValueError(f"PreferenceConfig.skip_margin must be in [0, 0.5), got {self.skip_margin}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"PreferenceConfig.val_fraction must be in (0, 1), got {self.val_fraction}")


class RewardEnsemble(nn.Module):
    def __init__(self, camera: str, image_size: int, members: int, feature_dim: int = 50):
        super().__init__()
        self.camera, self.image_size = camera, image_size
        self.cameras = (camera,)
        self.encoders = nn.ModuleList(ConvEncoder((camera,), image_size, feature_dim) for _ in range(members))
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(feature_dim, 256), nn.ReLU(), nn.Linear(256, 1))
                                   for _ in range(members))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def forward(self, images: torch.Tensor, augment_pad: int = 0) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> raw rewards per member (members, N)."""
        return torch.stack([head(encoder({self.camera: images}, augment_pad)).squeeze(-1)
                            for encoder, head in zip(self.encoders, self.heads)])

    @torch.no_grad()
    def rewards(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """Standardised ensemble-mean reward per frame."""
        self.eval()
        out = [((self(torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))).mean(0) - self.mean) / self.std)
               .numpy() for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def train_preference_reward(frames: FrameDataset, prefs: Preferences, cfg: PreferenceConfig = PreferenceConfig(),
                            camera: str | None = None, log=None):
    """Returns (model, report): held-out agreement with the VLM's preferences and, where the frames
    carry success labels, the AUROC of the learned reward for success."""
    from robot_rl.rewards.classifier import auroc

    camera = camera or frames.cameras[0]
    keep = np.abs(prefs.p_first - 0.5) >= cfg.skip_margin
    first, second, target = prefs.first[keep], prefs.second[keep], prefs.p_first[keep].astype(np.float32)
    if len(first) < 10:
        raise ValueError(f"only {len(first)} confident preferences (|P - 0.5| >= {cfg.skip_margin}): collect more pairs")
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(first))
    n_val = max(1, int(len(first) * cfg.val_fraction))
    val, train = order[:n_val], order[n_val:]
    images = frames.images[camera]
    model = RewardEnsemble(camera, images.shape[1], cfg.ensemble, cfg.feature_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    bootstraps = [rng.choice(train, size=len(train)) for _ in range(cfg.ensemble)]
    model.train()
    for update in range(cfg.updates):
        losses = []
        for k in range(cfg.ensemble):
            index = rng.choice(bootstraps[k], size=cfg.batch_size)
            pair = torch.from_numpy(np.concatenate([images[first[index]], images[second[index]]]))
            features = model.encoders[k]({camera: pair}, cfg.augment_pad)
            r = model.heads[k](features).squeeze(-1)
            logits = r[:cfg.batch_size] - r[cfg.batch_size:]
            losses.append(F.binary_cross_entropy_with_logits(logits, torch.from_numpy(target[index])))
        loss = torch.stack(losses).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log is not None and (update + 1) % 250 == 0:
            log(f"update {update + 1}/{cfg.updates}: loss {loss.item() / cfg.ensemble:.4f}")
    raw = model.rewards(images)  # mean 0 / std 1 not yet applied
    model.mean.fill_(float(raw.mean()))
    model.std.fill_(float(max(raw.std(), 1e-6)))
    rewards = model.rewards(images)
    agree = np.mean((rewards[first[val]] > rewards[second[val]]) == (target[val] > 0.5))
    report = {"camera": camera, "image_size": int(images.shape[1]), "pairs": len(prefs.first),
              "confident_pairs": len(first), "val_pairs": int(n_val), "val_agreement": float(agree),
              "source": prefs.source, "config": dataclasses.asdict(cfg)}
    if frames.labels.any() and not frames.labels.all():
        report["success_auroc"] = auroc(rewards, frames.labels)
    return model, report


class PreferenceReward(Labeler):
    """A trained preference reward model as a Labeler: dense reward, success only above `threshold`."""

    def __init__(self, model: RewardEnsemble, threshold: float | None = None):
        self.model, self.threshold = model, threshold
        self.cameras, self.image_size = model.cameras, model.image_size
        self.name = "preference"

    def provenance(self, task: str = "") -> dict:
        return {"labeler": self.name, "source": getattr(self, "report", {}).get("source", ""),
                "threshold": self.threshold, "cameras": list(self.cameras)}

    def label(self, images: dict[str, np.ndarray], task: str = "") -> Label:
        if self.model.camera not in images:
            raise ValueError(f"the preference reward reads camera {self.model.camera!r}; got {sorted(images)}")
        reward = float(self.model.rewards(np.asarray(images[self.model.camera])[None])[0])
        success = self.threshold is not None and reward >= self.threshold
        return Label(reward=reward, success=success)


def save_preference_reward(path: str | Path, model: RewardEnsemble, report: dict) -> Path:
    return save_model(path, {"format": FORMAT, "state": model.state_dict(), "camera": model.camera,
                             "image_size": model.image_size, "members": len(model.heads),
                             "feature_dim": report["config"]["feature_dim"], "report": report})


def load_preference_reward(path: str | Path, threshold: float | None = None,
                           payload: dict | None = None) -> PreferenceReward:
    payload = load_model(path, FORMAT, "preference reward model", "robot-rl rewards train-preference", payload)
    model = RewardEnsemble(payload["camera"], payload["image_size"], payload["members"], payload["feature_dim"])
    model.load_state_dict(payload["state"])
    labeler = PreferenceReward(model, threshold)
    labeler.report = payload["report"]
    return labeler
