"""Relabel stored episodes with a reward labeler, offline: a directory of episode files in, a directory
of relabelled copies out (never in place), resumable, with provenance.

Each step's reward becomes the labeler's reward for the observation the step led to (a success
classifier says 1 where the task is done). Steps the labeler cannot label keep their reward and source;
terminations and everything else stay as recorded (they are what happened). Each output file records
in `extra["relabel"]` the labeler, its model id, prompt (and its hash), threshold and the counts; the
output directory gets `relabel.json` with the same provenance and the totals.

Resuming is by file: an episode whose relabelled copy exists is skipped, and copies are written
atomically, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from robot_rl.episodes import IMAGE_PREFIX, episode_files, load_episode, now_iso, save_episode
from robot_rl.files import atomic_write
from robot_rl.rewards.base import EpisodeLabeler, Labeler

log = logging.getLogger(__name__)


def provenance(labeler: Labeler, task: str) -> dict:
    record = labeler.provenance(task)
    record.setdefault("threshold", labeler.threshold)
    record["prompt_sha256"] = hashlib.sha256(task.encode()).hexdigest()[:16]
    record["task"] = task
    return record


def _step_labels(labeler: Labeler, episode, task: str):
    """Per step: (reward, success) or None, from the observation after the step."""
    cameras = labeler.cameras or episode.cameras
    missing = [c for c in cameras if f"{IMAGE_PREFIX}{c}" not in episode.observations]
    if missing:
        raise ValueError(f"the labeler reads cameras {list(cameras)}; the episodes hold {episode.cameras}")
    if isinstance(labeler, EpisodeLabeler):  # whole-episode labelers (progress)
        return labeler.label_episode({c: episode.observations[f"{IMAGE_PREFIX}{c}"] for c in cameras}, task)
    labeler.reset()
    labels = []
    for t in range(1, episode.length + 1):
        try:
            labels.append(labeler.label({c: episode.observations[f"{IMAGE_PREFIX}{c}"][t] for c in cameras}, task))
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001 - one bad frame must not stop a long relabel
            log.warning("step %d: no label: %s", t - 1, err)
            labels.append(None)
    return labels


def relabel_directory(source: str | Path, out: str | Path, labeler, task: str, log_fn=None) -> dict:
    """Relabel every episode of `source` into `out`; returns the totals (also written to out/relabel.json)."""
    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise ValueError("relabel writes copies: --out must be another directory than the source")
    files = episode_files(source)
    if not files:
        raise ValueError(f"no episode files in {source}")
    out.mkdir(parents=True, exist_ok=True)
    record = provenance(labeler, task)
    summary = {"provenance": record, "source": str(source), "episodes": len(files), "relabelled": 0, "skipped": 0,
               "steps": 0, "no_labels": 0, "successes": 0, "agree_with_recorded_success": 0, "compared": 0}
    started = time.monotonic()
    for path in files:
        if (out / path.name).exists():
            summary["skipped"] += 1
            continue
        episode = load_episode(path)
        if (out / episode.file_name()).exists():
            summary["skipped"] += 1
            continue
        labels = _step_labels(labeler, episode, task)
        reward = episode.reward.copy()
        sources = list(episode.reward_sources)
        name = record["labeler"]
        if name not in sources:
            sources.append(name)
        code = sources.index(name)
        reward_source = episode.reward_source.copy()
        no_labels, success = 0, False
        for t, label in enumerate(labels):
            if label is None:
                no_labels += 1
                continue
            reward[t], reward_source[t] = label.reward, code
            success = success or bool(label.success)
        extra = dict(episode.extra)
        extra["relabel"] = {**record, "created": now_iso(), "source_file": path.name, "no_labels": no_labels,
                            "labeler_success": success}
        if isinstance(labeler, EpisodeLabeler):
            extra["relabel"]["value_order_correlation"] = labeler.last_voc
        relabelled = replace(episode, reward=reward.astype(np.float32), reward_source=reward_source,
                             reward_sources=sources, extra=extra)
        save_episode(relabelled, out)
        summary["relabelled"] += 1
        summary["steps"] += episode.length
        summary["no_labels"] += no_labels
        summary["successes"] += int(success)
        if episode.success is not None:
            summary["compared"] += 1
            summary["agree_with_recorded_success"] += int(success == episode.success)
        if log_fn is not None:
            log_fn(f"{path.name}: {episode.length} steps, labeler success {success}, recorded {episode.success}")
    summary["wall_s"] = time.monotonic() - started
    text = json.dumps(summary, indent=2).encode()
    atomic_write(out / "relabel.json", lambda f: f.write(text))
    return summary
