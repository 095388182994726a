"""Simulator throughput: env steps/s from state and from pixels, per task, against raw mj_step.

    python benchmarks/sim_throughput.py [--quick] [--out FILE.json]

For each task: env steps/s with random actions (state obs; pixels with two 128x128 cameras), the cost
of one raw `mj_step` on the same model and states, and the ratio of an env step's cost to the raw cost
of its physics substeps (the controller overhead). Resets are timed separately.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import sim  # noqa: E402
from report import report  # noqa: E402


def _rollout(env, steps: int, seed: int) -> tuple[float, float, int]:
    """(seconds in step, seconds in reset, resets) over `steps` random-action steps."""
    rng = np.random.default_rng(seed)
    step_time = reset_time = 0.0
    resets = 1
    t = time.perf_counter()
    env.reset(seed=seed)
    reset_time += time.perf_counter() - t
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        t = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        step_time += time.perf_counter() - t
        if terminated or truncated:
            t = time.perf_counter()
            env.reset()
            reset_time += time.perf_counter() - t
            resets += 1
    return step_time, reset_time, resets


def _raw_mj_step_seconds(env, steps: int, seed: int) -> float:
    """Seconds per raw mj_step over the same states the env steps through: for each env step, the
    physics state before it is restored and its substeps are re-run by mj_step alone, with the
    controls (and linearised law) in force at that moment held."""
    rng = np.random.default_rng(seed)
    m, d = env.model, env.data
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    snapshot = np.zeros(mujoco.mj_stateSize(m, spec))
    env.reset(seed=seed)
    total, physics_steps = 0.0, 0
    for _ in range(steps):
        mujoco.mj_getState(m, d, snapshot, spec)
        wrap = m.wrap_prm.copy()
        t = time.perf_counter()
        mujoco.mj_step(m, d, nstep=env.config.substeps)
        total += time.perf_counter() - t
        physics_steps += env.config.substeps
        mujoco.mj_setState(m, d, snapshot, spec)
        m.wrap_prm[:] = wrap
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    return total / physics_steps


def measure(task: str, steps: int, pixel_steps: int) -> dict:
    key = task.split("-")[0].lower().replace("pickcube", "pick_cube").replace("peginsertion", "peg_insertion")
    out: dict[str, float] = {}
    env = sim.make(task)
    substeps = env.config.substeps
    step_s, reset_s, resets = _rollout(env, steps, seed=1)
    raw = _raw_mj_step_seconds(env, steps, seed=1)
    env.close()
    out[f"{key}_state_env_steps_per_s"] = steps / step_s
    out[f"{key}_state_env_steps_per_s_with_resets"] = steps / (step_s + reset_s)
    out[f"{key}_reset_ms"] = 1e3 * reset_s / resets
    out[f"{key}_raw_mj_steps_per_s"] = 1.0 / raw
    out[f"{key}_controller_overhead_ratio"] = (step_s / steps) / (substeps * raw)

    env = sim.make(task, obs_mode="pixels", cameras=("front", "wrist"), image_size=128)
    step_s, reset_s, resets = _rollout(env, pixel_steps, seed=3)
    t = time.perf_counter()
    for _ in range(pixel_steps):
        env.render_camera("front")
        env.render_camera("wrist")
    render_s = time.perf_counter() - t
    env.close()
    out[f"{key}_pixels_2x128_env_steps_per_s"] = pixel_steps / step_s
    out[f"{key}_render_2x128_pairs_per_s"] = pixel_steps / render_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (about a minute)")
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    parser.add_argument("--tasks", nargs="+", default=list(sim.TASKS))
    args = parser.parse_args()
    steps, pixel_steps = (1000, 300) if args.quick else (5000, 1500)
    results: dict[str, object] = {
        "mujoco_version": mujoco.__version__,
        "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "state_steps_measured": steps,
        "pixel_steps_measured": pixel_steps,
    }
    for task in args.tasks:
        results.update(measure(task, steps, pixel_steps))
    report(results, args.out)


if __name__ == "__main__":
    main()
