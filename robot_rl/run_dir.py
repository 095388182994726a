"""A run's directory: every file written atomically, and buffers saved so that a crash at any moment
leaves a checkpoint and buffers that agree.

    config.json              the full TrainConfig of the run
    checkpoint.pt            agent, optimisers, counters, RNG states (atomic)
    online_buffer.npz        online replay, demo_buffer.npz: the demos (staged as *.next.npz, renamed
                             into place once checkpoint.pt counts them: a crash mid-save resumes)
    eval.jsonl               one line per evaluation: env_step, success_rate, mean_return, wall_s
    episodes.jsonl           one line per training episode
    learning_curve.png       success rate vs env steps
    tensorboard/             TensorBoard event files
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from robot_rl.files import atomic_write
from robot_rl.replay import ReplayBuffer


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write_json(self, name: str, value: Any) -> None:
        text = json.dumps(value, indent=2).encode()
        atomic_write(self.path / name, lambda f: f.write(text))

    def write_lines(self, name: str, records: list[dict]) -> None:
        lines = "".join(json.dumps(r) + "\n" for r in records).encode()
        atomic_write(self.path / name, lambda f: f.write(lines))

    # -- checkpoint and buffers ----------------------------------------------------------------------
    def buffer_files(self, name: str) -> tuple[Path, Path]:
        """(the file a buffer lives in, the file it is staged in during a save)."""
        return self.path / f"{name}.npz", self.path / f"{name}.next.npz"

    def has_buffer(self, name: str) -> bool:
        return any(p.exists() for p in self.buffer_files(name))

    def stage(self, buffer: ReplayBuffer, name: str) -> tuple[Path, Path]:
        final, staged = self.buffer_files(name)
        buffer.save(staged)
        return staged, final

    def commit(self, state: dict, staged: list[tuple[Path, Path]]) -> None:
        """Write the checkpoint that counts the staged buffers, then rename them into place."""
        atomic_write(self.path / "checkpoint.pt", lambda f: torch.save(state, f))
        for staged_path, final in staged:
            staged_path.replace(final)

    def load_buffer(self, name: str, expected: int) -> ReplayBuffer:
        """The buffer file the checkpoint counts `expected` transitions in, after a crash mid-save:
        a staged file the checkpoint counts is promoted, one it does not is discarded."""
        final, staged = self.buffer_files(name)
        if staged.exists():
            buffer = ReplayBuffer.load(staged)
            if buffer.transitions_written == expected:  # crashed after the checkpoint: promote it
                staged.replace(final)
                return buffer
            staged.unlink()  # crashed before it: the checkpoint still counts the previous file
        buffer = ReplayBuffer.load(final)
        if buffer.transitions_written != expected:
            raise ValueError(f"{final} holds {buffer.transitions_written} transitions but the checkpoint "
                             f"{self.path / 'checkpoint.pt'} expects {expected}")
        return buffer

    @staticmethod
    def read_checkpoint(path: str | Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # missing, truncated, not a checkpoint: say which file
            raise ValueError(f"checkpoint {path} is unreadable: {err}") from err


def plot_learning_curve(evals: list[dict], path: Path, title: str, x: str = "env_step") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([e[x] for e in evals], [e["success_rate"] for e in evals], marker="o")
    ax.set_xlabel("environment steps" if x == "env_step" else "gradient updates")
    ax.set_ylabel("deterministic eval success")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
