"""Reward-model files: one torch payload per model, written atomically, read back with a format check
and errors that say which file and what to do."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from robot_rl.files import atomic_write


def save_model(path: str | Path, payload: dict) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return Path(path)


def read_payload(path: str | Path, what: str, how_to_make: str) -> dict:
    """The torch payload of `path` (a `what`, made by `how_to_make`), whatever its format."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no {what} at {path}: train one with `{how_to_make}`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a {what} checkpoint: {err}") from err
    return payload if isinstance(payload, dict) else {}


def load_model(path: str | Path, fmt: str, what: str, how_to_make: str, payload: dict | None = None) -> dict:
    """The payload of `path`, which must be a `fmt` file (a `what`, made by `how_to_make`); `payload`: the
    file's contents when the caller has already read them."""
    if payload is None:
        payload = read_payload(path, what, how_to_make)
    if payload.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} checkpoint (format {fmt})")
    return payload
