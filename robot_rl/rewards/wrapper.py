"""LabelerReward: a labeler's reward and success replace the environment's, as on a real robot where no
reward function exists. The env's own success stays in `info["true_success"]` (the simulator's ground
truth, for measuring the labeler's effect); `info["success"]` and `terminated` become the labeler's.

The labeler sees the env's camera images (`obs["images"]`), or, for a state-observation simulator, the
cameras it renders for the labeler alone (resized to the labeler's input size). A labeler that gives no
label (None) or raises leaves the step at reward 0, not terminated, counted in `no_labels`.
"""

from __future__ import annotations

import logging

import cv2
import gymnasium as gym
import numpy as np

log = logging.getLogger(__name__)


class LabelerReward(gym.Wrapper):
    def __init__(self, env: gym.Env, labeler, task: str, cameras: tuple[str, ...] | None = None,
                 image_size: int | None = None):
        super().__init__(env)
        self.labeler, self.task = labeler, task
        model = getattr(labeler, "model", None)
        self.cameras = tuple(cameras or getattr(model, "cameras", ()))
        self.image_size = image_size or getattr(model, "image_size", None)
        self.no_labels = 0

    @property
    def steps(self) -> int:
        return self.env.unwrapped.steps

    def reset(self, **kwargs):
        if hasattr(self.labeler, "reset"):
            self.labeler.reset()
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
        try:
            label = self.labeler.label(self._images(obs), self.task)
        except ValueError:
            raise  # a configuration error: say it now, not once per step
        except Exception as err:  # noqa: BLE001 - a failing model must not end training
            log.warning("labeler %s failed: %s", getattr(self.labeler, "name", "?"), err)
            label = None
        info = {**info, "true_success": info.get("success", False),
                "reward_source": getattr(self.labeler, "name", "labeler")}
        if label is None:
            self.no_labels += 1
            return obs, 0.0, False, truncated, {**info, "success": False}
        terminated = bool(label.success)
        return obs, float(label.reward), terminated, truncated and not terminated, {**info, "success": terminated,
                                                                                  "label_confidence": label.confidence}
