"""Old code vs new code, side by side in one run: the same `robot-rl train` settings from a checkout of
`--base` (a git revision, checked out in a temporary worktree) and from this working tree, seed by
seed, two runs at a time (one core each), so both see the same machine load.

    python benchmarks/ab.py --base add1a46 --seeds 0 1 2 --steps 8000 \
        --base-set task=PickCube-v0 --new-set env.id=PickCube-v0 [--set num_demos=10 ...] --out ab.json

`--set` goes to both; `--base-set` / `--new-set` to one side (for keys a refactor renamed). Writes per
run the evaluation curve, env steps to 80% / 90% and the wall-clock; per side the median steps to 90%
(`<side>_median_env_steps_to_90pct`) and mean wall-clock (`<side>_mean_wall_s`). Identical curves mean
the change kept the learner's behaviour bit for bit (same seeds, same RNG consumption).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from report import report

ROOT = Path(__file__).resolve().parent.parent


def _first(evals: list[dict], threshold: float) -> int | None:
    return next((e["env_step"] for e in evals if e["success_rate"] >= threshold), None)


def _run(side: str, checkout: Path, sets: list[str], seed: int, out: Path) -> dict:
    run_dir = out / f"{side}_seed{seed}"
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--out", str(run_dir), "--set", *sets, f"seed={seed}"]
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(checkout)})
    if done.returncode != 0:
        return {"side": side, "seed": seed, "error": done.stderr[-2000:]}
    evals = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    return {"side": side, "seed": seed, "curve": [[e["env_step"], e["success_rate"]] for e in evals],
            "env_steps_to_80pct": _first(evals, 0.8), "env_steps_to_90pct": _first(evals, 0.9),
            "final_success": evals[-1]["success_rate"], "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision of the old code")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=8_000, help="total_env_steps of every run")
    parser.add_argument("--set", nargs="*", default=[], dest="common", help="settings for both sides")
    parser.add_argument("--base-set", nargs="*", default=[], help="settings for the old code only")
    parser.add_argument("--new-set", nargs="*", default=[], help="settings for the new code only")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="ab.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ab_"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                   capture_output=True)
    measure = [f"total_env_steps={args.steps}", "eval_every=500", "eval_episodes=20", "progress=false",
               "tensorboard=false", "torch_threads=1", *args.common]
    jobs = [(side, checkout, measure + extra, seed) for seed in args.seeds
            for side, checkout, extra in (("base", base, args.base_set), ("new", ROOT, args.new_set))]
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda job: _run(*job, work), jobs))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False,
                       capture_output=True)
    results: dict = {"base": args.base}
    for side in ("base", "new"):
        done = [r for r in runs if r["side"] == side and "error" not in r]
        steps = [r["env_steps_to_90pct"] if r["env_steps_to_90pct"] is not None else float("inf") for r in done]
        median = statistics.median(steps) if steps else float("inf")
        results[f"{side}_median_env_steps_to_90pct"] = None if median == float("inf") else median
        results[f"{side}_mean_wall_s"] = statistics.mean(r["wall_s"] for r in done) if done else None
    pairs = [(a, b) for a in runs for b in runs if a["side"] == "base" and b["side"] == "new" and a["seed"] == b["seed"]]
    results["identical_curves"] = all(a.get("curve") == b.get("curve") for a, b in pairs)
    report(results, None)
    Path(args.out).write_text(json.dumps({**results, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
