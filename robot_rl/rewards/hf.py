"""Loading Hugging Face `transformers` models for reward labelers: from a local directory or a hub id,
on CPU, with one clear error for the usual failures (a path that does not exist, a hub id while
offline or not downloaded, a directory that is not a model of the expected kind).

Image processors load as their PIL implementations (`*ImageProcessorPil`): the fast ones need
torchvision, which robot_rl does not depend on."""

from __future__ import annotations

import os
from pathlib import Path


def model_source(model_id: str) -> str:
    """`model_id` as given: an existing directory, or a hub id (`org/name`). A path-like id that does
    not exist is an error here, not a hub lookup that fails later with a confusing message."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError(f"a model id must be a local directory or a hub id like 'openai/clip-vit-base-patch32', "
                         f"got {model_id!r}")
    path = Path(model_id).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ValueError(f"{path} is not a transformers model directory (no config.json): save one with "
                             f"`model.save_pretrained(dir)` or download it with `hf download ID --local-dir dir`")
        return str(path)
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1:
        raise ValueError(f"model directory {model_id} does not exist")
    return model_id


def _offline() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:
        return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def load_pretrained(loader, model_id: str, what: str, **kwargs):
    """`loader.from_pretrained(model_id)`, with failures turned into one ValueError saying what to do."""
    source = model_source(model_id)
    try:
        return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        offline = _offline()
        hint = ("the hub is offline here (HF_HUB_OFFLINE): download the model on a connected machine "
                "(`hf download ID --local-dir DIR`) and pass DIR" if offline and source == model_id else
                "pass a local directory saved with save_pretrained, or a hub id that is downloaded or reachable")
        raise ValueError(f"cannot load the {what} of {model_id!r}: {str(err).splitlines()[0] if str(err) else err!r}. "
                         f"{hint}") from err
