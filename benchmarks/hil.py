"""Human in the loop: learning with vs without the simulated human, and teleop latency.

    python benchmarks/hil.py [--quick] [--out FILE.json] [--runs NAME ...] [--jobs 2]

Learning runs (each `robot-rl train` in its own process, same seeds and demos with and without the
human): env steps to 80% / 90% deterministic-eval success, the intervention rate over training (mean
per fifth of the training episodes: it should fall as the policy takes over), and wall-clock.
Latency: a key written to a real pseudo-terminal -> the keyboard device's command shows the motion
(the device's own read and decode path), p50 / p99 over repeated presses.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from report import report
from sample_efficiency import _run_one

PICK_STATE = {"env": {"id": "PickCube-v0"}, "num_demos": 10, "total_env_steps": 8_000}
PIXELS = {"obs_mode": "pixels", "image_size": 48, "agent": {"asymmetric": True, "utd": 2}}
RUNS = {
    "pick_cube_state_human": ({**PICK_STATE, "human": {"enabled": True}}, [0]),
    "pick_cube_state_no_human": (PICK_STATE, [0]),
    "pick_cube_pixels_human": ({**PICK_STATE, **PIXELS, "human": {"enabled": True}}, [0]),
    "pick_cube_pixels_no_human": ({**PICK_STATE, **PIXELS}, [0]),
    "peg_insertion_pixels_human": ({"env": {"id": "PegInsertion-v0"}, "num_demos": 20, "total_env_steps": 8_000,
                                    **PIXELS, "human": {"enabled": True}}, [0]),
    "peg_insertion_pixels_no_human": ({"env": {"id": "PegInsertion-v0"}, "num_demos": 20, "total_env_steps": 8_000,
                                       **PIXELS}, [0]),
}
DEFAULT_RUNS = ["pick_cube_state_human", "pick_cube_state_no_human"]


def _intervention_rates(run_dir: Path, parts: int = 5) -> list[float] | None:
    path = run_dir / "episodes.jsonl"
    if not path.exists():
        return None
    log = [json.loads(line) for line in path.read_text().splitlines()]
    if len(log) < parts:
        return None
    return [float(np.mean([log[i]["intervention_rate"] for i in chunk]))
            for chunk in np.array_split(np.arange(len(log)), parts)]


def keyboard_latency_ms(presses: int) -> dict[str, float]:
    """Key byte into a pty master -> the KeyboardDevice on the slave reports the motion."""
    from hardware.teleop import KeyboardDevice, TeleopConfig

    master, slave = os.openpty()
    device = KeyboardDevice(TeleopConfig(), fd=slave)
    latencies = []
    try:
        for _ in range(presses):
            time.sleep(0.25)  # let the previous press's hold window run out
            device.poll()
            sent = time.perf_counter()
            os.write(master, b"w")
            while True:
                command = device.poll()
                if command.active and command.action[0] > 0:
                    latencies.append(time.perf_counter() - sent)
                    break
                if time.perf_counter() - sent > 1.0:
                    raise RuntimeError("the keyboard device did not report a key press within 1 s")
    finally:
        device.close()
        os.close(master)
        os.close(slave)
    ms = 1e3 * np.asarray(latencies)
    return {"teleop_keyboard_latency_ms_p50": float(np.percentile(ms, 50)),
            "teleop_keyboard_latency_ms_p99": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 env steps each, 50 key presses")
    parser.add_argument("--out", default=None)
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(RUNS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--latency-only", action="store_true", help="only the teleop latency figures")
    args = parser.parse_args()
    if args.latency_only:
        report(keyboard_latency_ms(50 if args.quick else 200), args.out)
        return
    root = Path(tempfile.mkdtemp(prefix="hil_"))
    jobs = []
    for name in args.runs:
        values, seeds = RUNS[name]
        if args.quick:
            values = {**values, "total_env_steps": 2_000}
        jobs += [(name, values, seed) for seed in seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: _run_one(*job, root), jobs))
    results: dict[str, object] = {"quick": args.quick}
    for run in runs:
        name = run["name"]
        if "error" in run:
            results[f"{name}_error"] = run["error"][-500:]
            continue
        results[f"{name}_env_steps_to_80pct"] = run["steps_to_80"]
        results[f"{name}_env_steps_to_90pct"] = run["steps_to_90"]
        results[f"{name}_final_success"] = run["final_success"]
        results[f"{name}_wall_s"] = run["wall_s"]
        rates = _intervention_rates(root / f"{name}_seed{run['seed']}")
        if rates is not None and "no_human" not in name:
            results[f"{name}_intervention_rate_by_fifth"] = [round(r, 3) for r in rates]
            results[f"{name}_intervention_rate_falls"] = rates[-1] < rates[0]
    results.update(keyboard_latency_ms(50 if args.quick else 200))
    results["curves"] = {f"{r['name']}_seed{r['seed']}": [(e["env_step"], e["success_rate"]) for e in r.get("evals", [])]
                         for r in runs}
    report(results, args.out)
    if any("error" in r for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
