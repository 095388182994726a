"""N simulator actors (separate processes) feeding one learner on this machine.

    python benchmarks/distributed.py [--quick] [--actors 8] [--out FILE.json]

The learner (this process) runs the default pick-cube-from-state recipe (10 demos, UTD 4) through
`robot_rl.distributed.Learner`; each actor is a `robot-rl actor` process. Reports the env steps/s all
actors delivered, the learner's update calls/s and critic updates/s over the collection phase, how far
the learner lagged behind the UTD target when the step budget was reached (it catches up before it
finishes), and checks exactly-once delivery: episodes the learner counted = episodes the actors ran.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import report

from robot_rl.distributed import Learner
from robot_rl.train import TrainConfig


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 env steps (about a minute)")
    parser.add_argument("--actors", type=int, default=8)
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = parser.parse_args()
    steps = 3_000 if args.quick else 20_000
    root = Path(tempfile.mkdtemp(prefix="distributed_bench_"))
    ports = _free_ports(2)
    cfg = TrainConfig.from_dict({"env": {"id": "PickCube-v0"}, "num_demos": 10, "total_env_steps": steps,
                                 "eval_every": 10**9, "checkpoint_every": 10**9, "progress": False,
                                 "tensorboard": False, "out_dir": str(root / "learner")})
    learner = Learner(cfg, f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    actors = [subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "actor", "--actor-id", f"sim{i}", "--set", f"seed={i}",
         "--data-port", str(ports[0]), "--weights-port", str(ports[1]), "--spool", str(root / f"spool{i}"),
         "--flush-s", "5"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for i in range(args.actors)]
    try:
        while learner.env_steps == 0:  # clocks start with the first episode
            learner.serve(0.05)
        t0, steps0, updates0 = time.perf_counter(), learner.env_steps, learner.agent.updates
        learner.serve(10**9)  # until the step budget has arrived
        collect_s = time.perf_counter() - t0
        collected, updates_then = learner.env_steps - steps0, learner.agent.updates - updates0
        lag = learner._allowed_updates() - learner.agent.updates
        result = learner.run()  # pays the owed updates, checkpoints, tells actors to stop
        summaries = [json.loads(a.communicate(timeout=120)[0].strip().splitlines()[-1]) for a in actors]
    finally:
        learner.close()
        for a in actors:
            a.kill()
    ran = sum(s["episodes"] for s in summaries)
    unsent = sum(s["unsent_batches"] for s in summaries)
    report({
        "actors": args.actors,
        "cpu_count": os.cpu_count(),
        "env_steps": result["env_steps"],
        "actors_env_steps_per_s": collected / collect_s,
        "learner_update_calls_per_s": updates_then / cfg.agent.utd / collect_s,
        "learner_critic_updates_per_s": updates_then / collect_s,
        "utd_target": cfg.agent.utd,
        "utd_reached_during_collection": updates_then / max(collected, 1),
        "critic_updates_owed_at_budget": lag,
        "episodes_run_by_actors": ran,
        "episodes_counted_by_learner": learner.episodes,
        "episodes_still_spooled": unsent,
        # Episodes still spooled when an actor stopped were received but not yet checkpointed when
        # its flush timed out: they are in the learner's final checkpoint, and re-sent (then dropped
        # as duplicates) if that actor ever reconnects to this run.
        "exactly_once": learner.episodes == ran,
        "wall_s": result["wall_s"],
    }, args.out)


if __name__ == "__main__":
    main()
