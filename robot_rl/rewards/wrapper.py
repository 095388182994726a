"""LabelerReward: a labeler's reward and success replace the environment's, as on a real robot where no
reward function exists. The env's own success stays in `info["true_success"]` (the simulator's ground
truth, for measuring the labeler's effect); `info["success"]` and `terminated` become the labeler's.

The labeler sees the env's camera images (`obs["images"]`), or, for a state-observation simulator, the
cameras it renders for the labeler alone (resized to the labeler's input size). A labeler that gives no
label (None) or raises leaves the step at reward 0, not terminated, counted in `no_labels`.

With `review_every=k` the wrapper also keeps the frames the labeler judged against the simulator's
ground truth, for the next classifier (HIL-SERL's loop: the policy finds the classifier's false
positives, an operator marks them, the classifier is retrained with them as negatives; in simulation
the ground truth is the operator). It keeps every frame the labeler called a success and every k-th
other frame, up to `review_capacity`; `reviewed_frames()` returns them as a FrameDataset.
"""

from __future__ import annotations

import logging

import cv2
import gymnasium as gym
import numpy as np

from robot_rl.rewards.base import Labeler

log = logging.getLogger(__name__)


class LabelerReward(gym.Wrapper):
    def __init__(self, env: gym.Env, labeler: Labeler, task: str, cameras: tuple[str, ...] | None = None,
                 image_size: int | None = None, review_every: int = 0, review_capacity: int = 20_000):
        super().__init__(env)
        if not isinstance(labeler, Labeler):
            raise TypeError(f"{type(labeler).__name__} is not a robot_rl.rewards.base.Labeler")
        self.labeler, self.task = labeler, task
        self.cameras = tuple(cameras or labeler.cameras)
        self.image_size = image_size or labeler.image_size
        self.no_labels = 0
        if review_every < 0 or review_capacity < 1:
            raise ValueError("review_every must be >= 0 (0: keep no frames) and review_capacity >= 1")
        self.review_every, self.review_capacity = review_every, review_capacity
        self._review: dict[str, list] = {"labels": [], "episode": [], **{c: [] for c in self.cameras}}
        self._episode = -1
        self._labelled = 0

    @property
    def steps(self) -> int:
        return self.env.unwrapped.steps

    def reset(self, **kwargs):
        self.labeler.reset()
        self._episode += 1
        return self.env.reset(**kwargs)

    def _images(self, obs) -> dict[str, np.ndarray]:
        images = dict(obs.get("images", {}))
        missing = [c for c in self.cameras if c not in images]
        if missing:
            render = getattr(self.env.unwrapped, "render_camera", None)
            if render is None:
                raise ValueError(f"the labeler needs cameras {missing}, which this env neither observes nor renders")
            images.update({c: render(c) for c in missing})
        if self.image_size is not None:
            size = (self.image_size, self.image_size)
            images = {c: im if im.shape[:2] == size else cv2.resize(im, size, interpolation=cv2.INTER_AREA)
                      for c, im in images.items()}
        return images

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        images = self._images(obs)
        try:
            label = self.labeler.label(images, self.task)
        except ValueError:
            raise  # a configuration error: say it now, not once per step
        except Exception as err:  # noqa: BLE001 - a failing model must not end training
            log.warning("labeler %s failed: %s", self.labeler.name, err)
            label = None
        info = {**info, "true_success": info.get("success", False),
                "reward_source": self.labeler.name}
        self._keep_for_review(images, label, info)
        if label is None:
            self.no_labels += 1
            return obs, 0.0, False, truncated, {**info, "success": False}
        terminated = bool(label.success)
        info = {**info, "success": terminated}
        if label.confidence is not None:
            info["label_confidence"] = label.confidence
        return obs, float(label.reward), terminated, truncated and not terminated, info

    def _keep_for_review(self, images, label, info) -> None:
        if not self.review_every or "success" not in info or len(self._review["labels"]) >= self.review_capacity:
            return  # off, or no ground truth to label the frame with (a real robot), or full
        self._labelled += 1
        claimed = label is not None and label.success
        if claimed or self._labelled % self.review_every == 0:
            for c in self.cameras:
                self._review[c].append(images[c])
            self._review["labels"].append(bool(info["success"]))
            self._review["episode"].append(self._episode)

    def reviewed_frames(self):
        """The kept frames, labelled with the simulator's success (None if none were kept)."""
        from robot_rl.rewards.frames import FrameDataset

        if not self._review["labels"]:
            return None
        return FrameDataset({c: np.stack(self._review[c]) for c in self.cameras}, np.array(self._review["labels"]),
                            np.array(self._review["episode"]), self.task)
