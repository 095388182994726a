"""Transport throughput and weights latency on loopback, actor and learner in separate processes.

    python benchmarks/transport.py [--quick] [--out FILE.json]

One transition = two 128x128x3 uint8 images + 32 float32 proprio + 7 float32 action + float32 reward
+ terminated/truncated bools (~98 KB), sent in batches of 64 through the real ActorEndpoint ->
LearnerEndpoint (seq numbers, acks, window; spooled to disk with fsync, and again spooled in RAM),
against a raw pyzmq PUSH/PULL baseline sending the same frames zero-copy. Throughput counts from
the actor's first send (after the handshake) to the learner's receipt of the last batch. Weights:
a 1M-float32 parameter set published every 50 ms; latency is publish call -> actor has the arrays.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import queue
import shutil
import socket
import tempfile
import time
from typing import Any

import numpy as np
import zmq
from report import report

from robot_rl.transport import ActorEndpoint, LearnerEndpoint, encode
from robot_rl.transport.wire import Message

CFG = "bench"
BATCH = 64
# A pixel policy (2x64x64 cameras, conv encoder + 2x256 actor) has ~166k parameters: 1M is a margin.
WEIGHTS_FLOATS = 1_000_000
TIMEOUT_S = 120.0


def make_batch(n: int = BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "front": rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8),
        "wrist": rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8),
        "proprio": rng.standard_normal((n, 32), dtype=np.float32),
        "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32),
        "reward": rng.standard_normal(n, dtype=np.float32),
        "terminated": np.zeros(n, bool),
        "truncated": np.zeros(n, bool),
    }


def _free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


# -- ours: ActorEndpoint -> LearnerEndpoint ------------------------------------------------------------


def _learner(data: str, weights: str, batches: int, publishes: int, q: Any, stop: Any) -> None:
    with LearnerEndpoint(data, weights, CFG) as learner:
        received, last = 0, 0.0
        while received < batches and not stop.is_set():
            for _, msg in learner.poll(100):
                if msg.kind == "transitions":
                    received += 1
                    last = time.monotonic()
        q.put(("learner_last", last))
        params = {"w": np.random.default_rng(0).standard_normal(WEIGHTS_FLOATS, dtype=np.float32)}
        for version in range(1, publishes + 1):
            learner.poll(0)
            learner.publish_weights(version, params)
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                learner.poll(10)
        while not stop.is_set():  # keep answering until the actor is done
            learner.poll(50)


def _actor(data: str, weights: str, batches: int, publishes: int, spool_dir: str | None, q: Any) -> None:
    batch = make_batch()
    with ActorEndpoint("bench", data, weights, CFG, spool_dir, learner_timeout_s=30.0) as actor:
        while not actor.connected:
            actor.pump(10)
        t0 = time.monotonic()
        for _ in range(batches):
            while actor.unacked >= actor.window:  # closed loop: the learner sets the pace
                actor.pump(1)
            actor.send_transitions(batch)
        while actor.acked_seq < batches:
            actor.pump(5)
        q.put(("actor_t0", t0))
        q.put(("actor_acked", time.monotonic()))
        latencies, seen = [], 0
        deadline = time.monotonic() + publishes * 0.05 + 10
        while seen < publishes and time.monotonic() < deadline:
            latest = actor.latest_weights(timeout_ms=20)
            actor.pump(0)
            if latest is not None and latest[0] != seen:
                latencies.append(time.time() - actor.weights_header["published_unix_s"])
                seen = latest[0]
        q.put(("weights_latencies", latencies))


# -- raw pyzmq PUSH -> PULL, same frames ------------------------------------------------------------


def _raw_pull(address: str, batches: int, q: Any, stop: Any) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(address)
    received, last = 0, 0.0
    while received < batches and not stop.is_set():
        if pull.poll(100):
            frames = pull.recv_multipart(copy=False)
            if len(frames) > 1:
                received += 1
                last = time.monotonic()
    q.put(("learner_last", last))
    pull.close(linger=0)
    ctx.term()


def _raw_push(address: str, batches: int, q: Any) -> None:
    frames = encode(Message("transitions", {"seq": 0}, make_batch()))
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 8)
    push.connect(address)
    push.send(b"warmup")  # blocks until connected
    t0 = time.monotonic()
    for _ in range(batches):
        push.send_multipart(frames, copy=False)
    q.put(("actor_t0", t0))
    push.close(linger=10_000)
    ctx.term()


def _pair(target_a: Any, args_a: tuple, target_b: Any, args_b: tuple, wanted: set[str]) -> dict[str, Any]:
    """Run two spawned processes (receiver first) and collect the values they report."""
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target_a, args=(*args_a, q, stop)), ctx.Process(target=target_b, args=(*args_b, q))]
    for p in procs:
        p.start()
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not wanted <= out.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (not any(p.is_alive() for p in procs) and q.empty()):
                raise RuntimeError(f"benchmark processes did not report {sorted(wanted - out.keys())}")
            try:
                key, value = q.get(timeout=min(remaining, 1.0))
                out[key] = value
            except queue.Empty:  # check liveness again
                continue
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=15)
            if p.is_alive():
                p.terminate()
    return out


def measure_ours(batches: int, publishes: int, spool_dir: str | None) -> dict[str, Any]:
    data, weights = _free_address(), _free_address()
    return _pair(_learner, (data, weights, batches, publishes), _actor, (data, weights, batches, publishes, spool_dir),
                 {"actor_t0", "actor_acked", "learner_last", "weights_latencies"})


def measure_raw(batches: int) -> float:
    address = _free_address()
    out = _pair(_raw_pull, (address, batches), _raw_push, (address, batches), {"actor_t0", "learner_last"})
    return batches * BATCH / (out["learner_last"] - out["actor_t0"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches (well under a minute)")
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    parser.add_argument("--spool-dir", default=None, help="where the disk spool goes (default: a temp dir)")
    args = parser.parse_args()
    batches, publishes = (60, 20) if args.quick else (300, 100)
    transition_bytes = sum(a.nbytes for a in make_batch(1).values())
    results: dict[str, Any] = {
        "pyzmq_version": zmq.__version__,
        "libzmq_version": zmq.zmq_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "transition_bytes": transition_bytes,
        "batch_transitions": BATCH,
        "batches_measured": batches,
    }
    raw = measure_raw(batches)

    spool_root = tempfile.mkdtemp(prefix="transport_bench_", dir=args.spool_dir)
    try:
        disk = measure_ours(batches, publishes, os.path.join(spool_root, "spool"))
    finally:
        shutil.rmtree(spool_root, ignore_errors=True)
    memory = measure_ours(batches, 0, None)

    def rate(out: dict[str, Any]) -> float:
        return batches * BATCH / (out["learner_last"] - out["actor_t0"])

    ours, ours_memory = rate(disk), rate(memory)
    latencies_ms = 1e3 * np.asarray(disk["weights_latencies"])
    results.update({
        "loopback_transitions_per_s": ours,
        "loopback_mb_per_s": ours * transition_bytes / 1e6,
        "loopback_acked_transitions_per_s": batches * BATCH / (disk["actor_acked"] - disk["actor_t0"]),
        "loopback_no_spool_transitions_per_s": ours_memory,
        "raw_pyzmq_transitions_per_s": raw,
        "overhead_ratio": raw / ours,
        "overhead_ratio_no_spool": raw / ours_memory,
        "weights_floats": WEIGHTS_FLOATS,
        "weights_received": len(latencies_ms),
        "weights_latency_ms_p50": float(np.percentile(latencies_ms, 50)) if len(latencies_ms) else float("nan"),
        "weights_latency_ms_p95": float(np.percentile(latencies_ms, 95)) if len(latencies_ms) else float("nan"),
        "weights_latency_ms_p99": float(np.percentile(latencies_ms, 99)) if len(latencies_ms) else float("nan"),
    })
    report(results, args.out)


if __name__ == "__main__":
    main()
