"""Training-time image augmentation shared by every image encoder (the conv net and pretrained
backbones): DrQ's random shift and a photometric jitter."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by `pad` pixels and crop back at a random integer offset, per
    image. images: float (N, C, H, W)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
    batch = torch.arange(n).view(n, 1, 1)
    # Advanced indexing on (N, H+2p, W+2p, C) gathers each image's crop in one op.
    cropped = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return cropped.permute(0, 3, 1, 2)


def random_color(images: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Photometric augmentation, per image: brightness and contrast each scaled by a factor drawn from
    [1 - strength, 1 + strength], and each colour channel shifted by up to +-strength / 2. A real cell's
    light and surface colours differ from the simulator's, and an episode renders under one draw of the
    randomised light and colours; this redraws them for every sample of every batch.
    images: float (N, 3, H, W) in [0, 1]."""
    n = images.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(images.device, images.dtype)

    brightness = 1 + strength * uniform(n, 1, 1, 1)
    contrast = 1 + strength * uniform(n, 1, 1, 1)
    shift = 0.5 * strength * uniform(n, 3, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (((images - mean) * contrast + mean) * brightness + shift).clamp(0.0, 1.0)


def augment_images(images: torch.Tensor, pad: int, color: float) -> torch.Tensor:
    """Training-time image augmentation, shared by every image encoder: random_color, then DrQ's
    random_shift; 0 turns either off. images: float (N, 3, H, W) in [0, 1]."""
    if color > 0:
        images = random_color(images, color)
    if pad > 0:
        images = random_shift(images, pad)
    return images
