"""Sample efficiency of `robot-rl train`: env steps until deterministic-eval success thresholds.

    python benchmarks/sample_efficiency.py [--quick] [--out FILE.json] [--runs NAME ...] [--jobs 2]

Runs (each a TrainConfig, in its own process so two fit on two cores):
- pick_cube_state_10_demos: PickCube-v0 from state, 10 scripted demos, seeds 0-2 (median reported);
- pick_cube_state_crossq_10_demos: CrossQ (robot_rl/agents/crossq.py) on the same demos, seeds 0-2;
- pick_cube_state_no_demos: plain SAC without demos, the baseline;
- peg_insertion_state_20_demos: PegInsertion-v0 from state, 20 demos;
- pick_cube_state_bc_10_demos / pick_cube_state_iql_10_demos: offline baselines on the same demos
  (no env steps: a success there is reached at "0 env steps");
- pick_cube_state_iql_then_online[_anchored]: offline-to-online. IQL on 10 demos (2,000 updates), then
  online SAC warm-started from it without the offline data (WSRL), without / with the anchor to the
  pre-trained policy;
- pick_cube_pixels_asymmetric (not in the default set: ~25 minutes): configs/pick_cube_pixels.yaml.
Writes per-run curves, env steps to 80% / 90% success, updates and wall-clock; and a PNG of the curves
next to the JSON. `--quick` runs one seed each with shorter budgets (a smoke figure, not the target).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IQL_PRETRAIN = {"env": {"id": "PickCube-v0"}, "num_demos": 10, "agent": {"name": "iql", "updates": 2_000}}
FULL = {
    "pick_cube_state_10_demos": ({"env": {"id": "PickCube-v0"}, "num_demos": 10, "total_env_steps": 10_000}, [0, 1, 2]),
    # CrossQ (no target networks, batch-renormalised critics, the paper's UTD 1), fed like SAC.
    "pick_cube_state_crossq_10_demos": ({"env": {"id": "PickCube-v0"}, "num_demos": 10, "total_env_steps": 10_000,
                                         "agent": {"name": "crossq"}}, [0, 1, 2]),
    "pick_cube_state_no_demos": ({"env": {"id": "PickCube-v0"}, "num_demos": 0, "total_env_steps": 10_000}, [0]),
    "peg_insertion_state_20_demos": ({"env": {"id": "PegInsertion-v0"}, "num_demos": 20, "total_env_steps": 10_000}, [0]),
    "pick_cube_state_bc_10_demos": ({"env": {"id": "PickCube-v0"}, "num_demos": 10, "agent": {"name": "bc", "updates": 5_000}}, [0]),
    "pick_cube_state_iql_10_demos": ({"env": {"id": "PickCube-v0"}, "num_demos": 10, "agent": {"name": "iql", "updates": 5_000}}, [0]),
    "pick_cube_state_iql_then_online": ({"env": {"id": "PickCube-v0"}, "num_demos": 0, "total_env_steps": 6_000,
                                         "learning_starts": 1_000, "pretrain": IQL_PRETRAIN}, [0]),
    "pick_cube_state_iql_then_online_anchored": ({"env": {"id": "PickCube-v0"}, "num_demos": 0, "total_env_steps": 6_000,
                                                  "learning_starts": 1_000, "anchor_weight": 1.0,
                                                  "anchor_steps": 1_000_000, "pretrain": IQL_PRETRAIN}, [0]),
    "pick_cube_pixels_asymmetric": ({"env": {"id": "PickCube-v0"}, "obs_mode": "pixels", "image_size": 48,
                                     "num_demos": 10, "total_env_steps": 8_000,
                                     "agent": {"asymmetric": True, "utd": 2}}, [0]),
}
DEFAULT_RUNS = [name for name in FULL if name != "pick_cube_pixels_asymmetric"]
COMMON = {"eval_every": 500, "eval_episodes": 20, "progress": False, "tensorboard": False}
# Pixel evaluations render every step: fewer and rarer ones keep the run's wall-clock honest.
PIXEL_EVAL = {"eval_every": 1000, "eval_episodes": 10}


def _steps_to(evals: list[dict], threshold: float) -> int | None:
    for e in evals:
        if e["success_rate"] >= threshold:
            return e["env_step"]
    return None


def _run_one(name: str, values: dict, seed: int, root: Path) -> dict:
    out = root / f"{name}_seed{seed}"
    if "pretrain" in values:  # offline stage first; the online run starts from its checkpoint
        values = dict(values)
        pretrain = _run_one(f"{name}_pretrain", values.pop("pretrain"), seed, root)
        if "error" in pretrain:
            return {**pretrain, "name": name}
        values["warm_start"] = str(root / f"{name}_pretrain_seed{seed}" / "checkpoint.pt")
    flat = {}
    common = {**COMMON, **PIXEL_EVAL} if values.get("obs_mode") == "pixels" else COMMON
    for key, value in {**common, **values, "seed": seed}.items():  # nested dicts -> dotted keys
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    sets = [f"{k}={json.dumps(v)}" for k, v in flat.items()]
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--out", str(out), "--set", *sets]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"name": name, "seed": seed, "error": done.stderr[-2000:]}
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    return {"name": name, "seed": seed, "evals": evals, "steps_to_80": _steps_to(evals, 0.8),
            "steps_to_90": _steps_to(evals, 0.9), "final_success": evals[-1]["success_rate"],
            "updates": evals[-1]["updates"], "wall_s": evals[-1]["wall_s"]}


def _plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for run in runs:
        if "evals" in run:
            ax.plot([e["env_step"] for e in run["evals"]], [e["success_rate"] for e in run["evals"]],
                    label=f"{run['name']} s{run['seed']}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("deterministic eval success")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed each, 3,000 env steps")
    parser.add_argument("--out", default="sample_efficiency.json")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(FULL))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--workdir", default=None, help="where run directories go (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="sample_efficiency_"))
    jobs = []
    for name in args.runs:
        values, seeds = FULL[name]
        if args.quick:
            values, seeds = {**values, "total_env_steps": 3_000}, seeds[:1]
            if values.get("agent", {}).get("name") in ("bc", "iql"):
                values = {**values, "agent": {**values["agent"], "updates": 1_000}}
            if "pretrain" in values:
                pretrain = values["pretrain"]
                values = {**values, "pretrain": {**pretrain, "agent": {**pretrain["agent"], "updates": 1_000}}}
        jobs += [(name, values, seed) for seed in seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: _run_one(*job, root), jobs))
    summary: dict[str, object] = {"quick": args.quick, "runs": runs}
    for name in args.runs:
        mine = [r for r in runs if r["name"] == name and "evals" in r]
        for threshold in (80, 90):
            steps = [r[f"steps_to_{threshold}"] for r in mine]
            reached = [s for s in steps if s is not None]
            summary[f"{name}_env_steps_to_{threshold}pct_median"] = (
                statistics.median(reached) if len(reached) * 2 > len(steps) else None)
        summary[f"{name}_final_success_median"] = statistics.median(r["final_success"] for r in mine) if mine else None
        summary[f"{name}_wall_s_median"] = statistics.median(r["wall_s"] for r in mine) if mine else None
    out = Path(args.out)
    out.write_text(json.dumps(summary, indent=2))
    _plot(runs, out.with_suffix(".png"))
    for key, value in summary.items():
        if key != "runs":
            print(f"{key:60s} {value}")
    for run in runs:
        if "error" in run:
            print(f"{run['name']} seed {run['seed']} FAILED:\n{run['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
