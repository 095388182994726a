"""Neural network building blocks: batched critic ensembles, a tanh-Gaussian actor, a small conv
encoder with DrQ random-shift augmentation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.augment import augment_images


class EnsembleLinear(nn.Module):
    """`n` independent linear layers applied as one batched matmul: (n, B, in) -> (n, B, out)."""

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleMLP(nn.Module):
    """`n` MLPs with LayerNorm after each hidden layer (RLPD), evaluated in one pass per layer."""

    def __init__(self, n: int, in_features: int, hidden: tuple[int, ...], out_features: int,
                 layer_norm: bool = True):
        super().__init__()
        self.n = n
        dims = (in_features, *hidden)
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norm_scale = nn.ParameterList(nn.Parameter(torch.ones(n, 1, h)) for h in hidden) if layer_norm else None
        self.norm_shift = nn.ParameterList(nn.Parameter(torch.zeros(n, 1, h)) for h in hidden) if layer_norm else None
        self.head = EnsembleLinear(n, dims[-1], out_features)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, in) shared by all members, or (n, B, in). Returns (n, B, out); with `members`
        (indices) only those members are evaluated: (len(members), B, out)."""
        n = self.n if members is None else len(members)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(n, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x, members)
            if self.norm_scale is not None:
                scale, shift = self.norm_scale[i], self.norm_shift[i]
                if members is not None:
                    scale, shift = scale[members], shift[members]
                x = F.layer_norm(x, x.shape[-1:]) * scale + shift
            x = F.relu(x)
        return self.head(x, members)


def mlp(in_features: int, hidden: tuple[int, ...], out_features: int, layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = (in_features, *hidden)
    for a, b in zip(dims[:-1], dims[1:]):
        layers.append(nn.Linear(a, b))
        if layer_norm:
            layers.append(nn.LayerNorm(b))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(dims[-1], out_features))
    return nn.Sequential(*layers)


class TanhGaussianActor(nn.Module):
    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, in_features: int, hidden: tuple[int, ...], action_dim: int):
        super().__init__()
        self.net = mlp(in_features, hidden, 2 * action_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(features).chunk(2, dim=-1)
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action in (-1, 1) and its log-probability (with the tanh correction)."""
        mean, log_std = self(features)
        std = log_std.exp()
        noise = torch.randn_like(mean)
        pre_tanh = mean + std * noise
        action = torch.tanh(pre_tanh)
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(x)^2) computed stably: 2 * (log 2 - x - softplus(-2x))
        log_prob = log_prob - (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return action, log_prob

    def deterministic(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(features)[0])


class ConvEncoder(nn.Module):
    """Small conv trunk shared by all cameras (RLPD/SERL-sized), then a projection with LayerNorm.
    uint8 (N, H, W, 3) per camera -> (N, feature_dim * cameras)."""

    def __init__(self, cameras: tuple[str, ...], image_size: int, feature_dim: int = 50, channels: int = 32):
        super().__init__()
        self.cameras = cameras
        self.trunk = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
        )
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, 3, image_size, image_size)).numel()
        self.project = nn.Sequential(nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.out_features = feature_dim * len(cameras)

    def forward(self, images: dict[str, torch.Tensor], augment_pad: int = 0, augment_color: float = 0.0) -> torch.Tensor:
        stacked = torch.cat([images[c] for c in self.cameras], dim=0)  # (cams * N, H, W, 3) uint8
        x = augment_images(stacked.permute(0, 3, 1, 2).float() / 255.0, augment_pad, augment_color) - 0.5
        features = self.project(self.trunk(x).flatten(1))
        return torch.cat(features.chunk(len(self.cameras), dim=0), dim=-1)


class ObservationEncoder(nn.Module):
    """A flat observation dict -> one feature vector: vector entries concatenated and, for images, the
    conv encoder's features. By default `privileged` (simulation-only state a real robot does not have)
    is left out; an asymmetric critic takes it, and can leave the images out."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], feature_dim: int = 50, images: bool = True,
                 privileged: bool = False, backbone: str | None = None):
        super().__init__()
        self.vector_keys = sorted(k for k in shapes if not k.startswith("images/") and k != "privileged")
        if privileged:
            if "privileged" not in shapes:
                raise ValueError("an asymmetric critic needs `privileged` observations (env privileged=True)")
            self.vector_keys.append("privileged")
        self.image_keys = sorted(k for k in shapes if k.startswith("images/")) if images else []
        self.conv: nn.Module | None = None
        out = sum(math.prod(shapes[k]) for k in self.vector_keys)
        if self.image_keys:
            cameras = tuple(k.split("/", 1)[1] for k in self.image_keys)
            size = shapes[self.image_keys[0]][0]
            if backbone is not None:  # pretrained and frozen (robot_rl/backbones.py)
                from robot_rl.backbones import PretrainedEncoder

                self.conv = PretrainedEncoder(cameras, size, backbone, feature_dim)
            else:
                self.conv = ConvEncoder(cameras, size, feature_dim)
            out += self.conv.out_features
        self.out_features = out

    def forward(self, obs: dict[str, torch.Tensor], augment_pad: int = 0, augment_color: float = 0.0) -> torch.Tensor:
        parts = [obs[k].float().flatten(1) for k in self.vector_keys]
        if self.conv is not None:
            parts.append(self.conv({k.split("/", 1)[1]: obs[k] for k in self.image_keys}, augment_pad, augment_color))
        return torch.cat(parts, dim=-1)
