"""Pretrained, frozen image backbones (e.g. a ResNet) from a local directory or a hub id, through
`transformers` (the `vlm` extra; no torchvision). Same interface as networks.ConvEncoder, so an agent
takes either. Frozen: features are computed without gradients, once per batch, and shared by the
actor and the critics; a small trainable projection (Linear + LayerNorm + tanh) adapts them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _normalisation(name_or_path: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """image_mean/std from a local preprocessor_config.json, else ImageNet's."""
    config = Path(name_or_path) / "preprocessor_config.json"
    if config.is_file():
        values = json.loads(config.read_text())
        return tuple(values.get("image_mean", IMAGENET_MEAN)), tuple(values.get("image_std", IMAGENET_STD))
    return IMAGENET_MEAN, IMAGENET_STD


def load_backbone(name_or_path: str) -> nn.Module:
    try:
        from transformers import AutoModel
    except ImportError as err:
        raise ValueError("a pretrained backbone needs transformers: pip install -e '.[vlm]'") from err
    try:
        return AutoModel.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load the backbone {name_or_path!r} (a local directory with config.json "
                         f"and weights, or a hub id reachable from here): {err}") from err


class PretrainedEncoder(nn.Module):
    def __init__(self, cameras: tuple[str, ...], image_size: int, name_or_path: str, feature_dim: int = 50):
        super().__init__()
        self.cameras = cameras
        self.backbone = load_backbone(name_or_path).eval().requires_grad_(False)
        mean, std = _normalisation(name_or_path)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            flat = self._embed(torch.zeros(1, 3, image_size, image_size)).shape[-1]
        self.project = nn.Sequential(nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.out_features = feature_dim * len(cameras)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(pixel_values=(x - self.mean) / self.std)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:  # models without a pooler: average the last hidden state
            hidden = out.last_hidden_state
            pooled = hidden.mean(dim=tuple(range(2, hidden.dim()))) if hidden.dim() == 4 else hidden.mean(1)
        return pooled.flatten(1)

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics stay the pretrained ones
        return self

    def forward(self, images: dict[str, torch.Tensor], augment_pad: int = 0, augment_color: float = 0.0) -> torch.Tensor:
        from robot_rl.augment import augment_images

        stacked = torch.cat([images[c] for c in self.cameras], dim=0)
        x = augment_images(stacked.permute(0, 3, 1, 2).float() / 255.0, augment_pad, augment_color)
        with torch.no_grad():
            features = self._embed(x)
        projected = self.project(features.float())
        return torch.cat(projected.chunk(len(self.cameras), dim=0), dim=-1)
