"""Zero-shot reward from a CLIP-style model and a task sentence: VLM-RM (Rocamonde et al., 2023).

With unit image embedding x, goal-prompt embedding g and baseline-prompt embedding b, the reward is

    R(x) = 1 - 1/2 * || P (x - g) ||^2,    P = alpha * d d^T + (1 - alpha) * I,   d = (g - b) / ||g - b||

alpha = 0 is the plain cosine similarity to the goal (R = x.g); alpha = 1 keeps only the component
along the baseline -> goal direction, which removes what the two prompts share ("a robot arm", the
table) and leaves what the task changes. R lies in [-1, 1].

    encoder = HFClipEncoder("openai/clip-vit-base-patch32")       # or a local directory; SigLIP works too
    labeler = ClipReward(encoder, baseline="a robot arm", alpha=0.5)
    labeler.label({"front": rgb}, "pick up the red cube")           # Label(reward=..., success=False)

Success needs a threshold, e.g. calibrated on labelled frames (`calibrate`); without one the reward
shapes and the episode ends on its time limit.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from robot_rl.rewards.base import Hysteresis, Label, Labeler, instruction_for
from robot_rl.rewards.hf import load_pretrained


class TextImageEncoder(Protocol):
    name: str

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> unit-norm (N, D)."""
        ...

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """-> unit-norm (len(texts), D)."""
        ...


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def vlm_rm_reward(image_embeddings: np.ndarray, goal: np.ndarray, baseline: np.ndarray, alpha: float) -> np.ndarray:
    """The VLM-RM reward of each row of `image_embeddings` (all three are normalised here)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    x, g, b = _unit(np.atleast_2d(image_embeddings)), _unit(goal), _unit(baseline)
    direction = g - b
    norm = np.linalg.norm(direction)
    if norm < 1e-8:
        if alpha > 0:
            raise ValueError("the goal and baseline prompts embed identically: alpha > 0 needs prompts that differ")
        direction = np.zeros_like(g)
    else:
        direction = direction / norm
    diff = x - g
    along = diff @ direction  # (N,)
    # P diff = alpha * d (d.diff) + (1 - alpha) * diff, without forming the D x D projection
    projected = alpha * along[:, None] * direction[None] + (1 - alpha) * diff
    return 1.0 - 0.5 * np.sum(projected**2, axis=1)


def _features(output) -> torch.Tensor:
    """transformers 5 returns a ModelOutput whose pooler_output is the projected embedding; 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFClipEncoder:
    """A CLIP or SigLIP checkpoint through `transformers` (local directory or hub id), on CPU."""

    def __init__(self, model_id: str, torch_threads: int | None = None, batch_size: int = 32):
        import transformers

        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.name, self.batch_size = model_id, batch_size
        self.model = load_pretrained(transformers.AutoModel, model_id, "CLIP-style model").eval()
        if not (hasattr(self.model, "get_image_features") and hasattr(self.model, "get_text_features")):
            raise ValueError(f"{model_id} is a {type(self.model).__name__}, not a CLIP-style model with image and "
                             f"text embeddings (CLIP, SigLIP, ...)")
        self.tokenizer = load_pretrained(transformers.AutoTokenizer, model_id, "tokenizer")
        self.processor = load_pretrained(transformers.AutoImageProcessor, model_id, "image processor")
        # SigLIP was trained on max-length padded text; CLIP on padded-to-longest with an attention mask
        self._padding = "max_length" if "siglip" in type(self.model).__name__.lower() else True

    @torch.no_grad()
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        out = []
        for i in range(0, len(images), self.batch_size):
            pixels = self.processor(images=list(images[i:i + self.batch_size]), return_tensors="pt")["pixel_values"]
            out.append(_features(self.model.get_image_features(pixel_values=pixels)).float().numpy())
        return _unit(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts), padding=self._padding, truncation=True, return_tensors="pt")
        return _unit(_features(self.model.get_text_features(**tokens)).float().numpy())


class ClipReward(Labeler):
    """The VLM-RM reward as a Labeler. The goal prompt is the task sentence given to `label` (or
    `goal`, fixed); the reward of several cameras is their mean. Success: reward >= `threshold` for
    `hysteresis` consecutive frames (never, without a threshold)."""

    def __init__(self, encoder: TextImageEncoder, baseline: str = "a robot arm", alpha: float = 0.5,
                 cameras: tuple[str, ...] = ("front",), goal: str | None = None, threshold: float | None = None,
                 hysteresis: int = 1):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not cameras:
            raise ValueError("ClipReward needs at least one camera")
        self.encoder, self.baseline, self.alpha, self.goal = encoder, baseline, alpha, goal
        self.cameras, self.threshold, self.hysteresis = tuple(cameras), threshold, Hysteresis(hysteresis)
        self.name = f"clip:{encoder.name}"
        self._text: dict[str, np.ndarray] = {}

    def provenance(self, task: str = "") -> dict:
        return {"labeler": self.name, "goal": self.goal or task, "baseline": self.baseline, "alpha": self.alpha,
                "threshold": self.threshold, "cameras": list(self.cameras)}

    def _embedding(self, text: str) -> np.ndarray:
        if text not in self._text:
            self._text[text] = self.encoder.embed_texts([text])[0]
        return self._text[text]

    def rewards(self, images: dict[str, np.ndarray], task: str = "") -> np.ndarray:
        """Batch scoring: {camera: uint8 (N, H, W, 3)} -> rewards (N,)."""
        goal = self.goal or task
        if not goal:
            raise ValueError("ClipReward needs a goal: the task sentence, or goal=...")
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ValueError(f"ClipReward reads cameras {list(self.cameras)}; missing {missing}")
        g, b = self._embedding(goal), self._embedding(self.baseline)
        return np.mean([vlm_rm_reward(self.encoder.embed_images(images[c]), g, b, self.alpha)
                        for c in self.cameras], axis=0)

    def reset(self) -> None:
        self.hysteresis.reset()

    def label(self, images: dict[str, np.ndarray], task: str = "") -> Label:
        reward = float(self.rewards({c: np.asarray(im)[None] for c, im in images.items()}, task)[0])
        above = self.threshold is not None and reward >= self.threshold
        return Label(reward=reward, success=self.hysteresis.update(above))

    def calibrate(self, frames, task: str = "") -> dict:
        """Set `threshold` from labelled frames (a FrameDataset) by F0.5, and report how well the zero-shot
        reward separates success from failure there (AUROC)."""
        from robot_rl.rewards.classifier import calibrate_threshold, metrics

        scores = self.rewards(frames.images, task or instruction_for(frames.task))
        self.threshold = calibrate_threshold(scores, frames.labels, floor=-1.0)
        return {"threshold": self.threshold, **metrics(scores, frames.labels, self.threshold)}
