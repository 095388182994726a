"""Learner throughput: gradient updates/s of the SAC/RLPD agent on CPU.

    python benchmarks/learner_throughput.py [--quick] [--out FILE.json] [--threads N]

Full SAC update = one critic update + one actor/temperature update, batch 256, 2x256 MLPs.
- state batches, 2 and 10 critics: our batched ensemble (one baddbmm per layer) vs a naive baseline
  that loops over separate nn.Sequential critics (what peers do), both eager;
- the batched ensemble with bf16 autocast (precision="bf16"), and that under torch.compile when it
  compiles here (compile time reported);
- pixel batches (two 64x64 cameras, DrQ shift, shared conv encoder): full updates/s;
- CrossQ's critic updates (its default networks) on the same state batches;
- distillation steps (sim-to-real recipe e: a pixel student, two 48x48 cameras, regressing onto a
  teacher's actions), in fp32 and bf16.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from report import report

from robot_rl.agents import agent_config, make_agent
from robot_rl.agents.distill import distill_update, make_student_optimizer
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.networks import TanhGaussianActor, mlp
from robot_rl.replay import Batch, ObsSpec

BATCH = 256
STATE_SPEC = ObsSpec({"proprio": (13,), "object": (10,)}, {"proprio": "float32", "object": "float32"})
ACTION_DIM = 4


def _batch(spec: ObsSpec, rng: np.random.Generator) -> Batch:
    def obs():
        out = {}
        for key, shape in spec.shapes.items():
            if spec.dtypes[key] == "uint8":
                out[key] = rng.integers(0, 255, (BATCH, *shape), dtype=np.uint8)
            else:
                out[key] = rng.normal(size=(BATCH, *shape)).astype(np.float32)
        return out

    return Batch(obs(), rng.uniform(-1, 1, (BATCH, ACTION_DIM)).astype(np.float32),
                 rng.uniform(size=BATCH).astype(np.float32), obs(), np.ones(BATCH, np.float32),
                 np.zeros(BATCH, bool), np.zeros(BATCH, bool))


class NaiveLoopSAC:
    """Baseline: critics as separate nn.Sequential(LayerNorm) modules updated in a Python loop."""

    def __init__(self, num_critics: int, in_dim: int, hidden=(256, 256)):
        self.critics = [mlp(in_dim + ACTION_DIM, hidden, 1, layer_norm=True) for _ in range(num_critics)]
        self.targets = [mlp(in_dim + ACTION_DIM, hidden, 1, layer_norm=True) for _ in range(num_critics)]
        for c, t in zip(self.critics, self.targets):
            t.load_state_dict(c.state_dict())
        self.actor = TanhGaussianActor(in_dim, hidden, ACTION_DIM)
        self.critic_opt = torch.optim.Adam([p for c in self.critics for p in c.parameters()], lr=3e-4)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)

    def update(self, obs, action, reward, next_obs, mask):
        with torch.no_grad():
            next_action, _ = self.actor.sample(next_obs)
            idx = np.random.choice(len(self.targets), 2, replace=False)
            q_next = torch.min(torch.stack([self.targets[i](torch.cat([next_obs, next_action], -1)) for i in idx]), 0).values
            target = reward.unsqueeze(-1) + 0.99 * mask.unsqueeze(-1) * q_next
        loss = sum(F.mse_loss(c(torch.cat([obs, action], -1)), target) for c in self.critics)
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            for c, t in zip(self.critics, self.targets):
                for p, pt in zip(c.parameters(), t.parameters()):
                    pt.lerp_(p, 0.005)
        new_action, log_prob = self.actor.sample(obs)
        q = torch.stack([c(torch.cat([obs, new_action], -1)) for c in self.critics]).mean(0)
        actor_loss = (0.01 * log_prob - q.squeeze(-1)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()


def _rate(fn, seconds: float) -> float:
    fn()  # warm-up
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def _two_camera_spec(size: int) -> ObsSpec:
    """Proprio plus front and wrist cameras of size x size, as the pick-cube pixel recipes see them."""
    cameras = {f"images/{name}": (size, size, 3) for name in ("front", "wrist")}
    return ObsSpec({"proprio": (13,), **cameras}, {"proprio": "float32", **{key: "uint8" for key in cameras}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--seconds", type=float, default=None, help="timing window per figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    rng = np.random.default_rng(0)
    results: dict[str, object] = {"torch_version": torch.__version__, "threads": args.threads, "batch": BATCH}

    state_batch = _batch(STATE_SPEC, rng)
    tensors = {k: torch.as_tensor(v) for k, v in state_batch.obs.items()}
    flat_obs = torch.cat([tensors["object"], tensors["proprio"]], -1)
    act, rew, msk = (torch.as_tensor(state_batch.action), torch.as_tensor(state_batch.reward),
                     torch.as_tensor(state_batch.discount))
    for critics in (2, 10):
        naive = NaiveLoopSAC(critics, flat_obs.shape[1])
        results[f"state_{critics}_critics_naive_loop_updates_per_s"] = _rate(
            lambda: naive.update(flat_obs, act, rew, flat_obs, msk), seconds)
        naive_rate = results[f"state_{critics}_critics_naive_loop_updates_per_s"]
        variants = {"batched": {"precision": "fp32"}, "batched_bf16": {"precision": "bf16"}}
        if not args.no_compile:
            variants["batched_bf16_compiled"] = {"precision": "bf16", "compile": True}
        for name, options in variants.items():
            prefix = f"state_{critics}_critics"
            try:
                agent = SACAgent(STATE_SPEC, ACTION_DIM,
                                 SACConfig(num_critics=critics, critic_subset=2, utd=1, **options))
                start = time.perf_counter()
                agent.update([state_batch])  # compiles, when asked to
                if options.get("compile"):
                    results[f"{prefix}_compile_s"] = time.perf_counter() - start
                rate = _rate(lambda: agent.update([state_batch]), seconds)
            except Exception as err:  # e.g. no compiler toolchain: report instead of failing
                results[f"{prefix}_{name}_error"] = f"{type(err).__name__}: {err}"[:300]
                continue
            results[f"{prefix}_{name}_updates_per_s"] = rate
            results[f"{prefix}_{name.replace('batched', '').strip('_') or 'batched'}_speedup_vs_naive"] = rate / naive_rate

    # CrossQ (robot_rl/agents/crossq.py): its defaults (2 batch-renormalised 512x512 critics, one critic
    # update on the joint (s, a) / (s', a') batch per call, the actor every 3rd), fp32.
    crossq = make_agent(STATE_SPEC, ACTION_DIM, agent_config(name="crossq"))
    results["state_crossq_critic_updates_per_s"] = _rate(lambda: crossq.update([state_batch]), seconds)

    pixel_spec = _two_camera_spec(64)
    pixel_batch = _batch(pixel_spec, rng)
    for suffix, precision in (("", "fp32"), ("_bf16", "bf16")):
        agent = SACAgent(pixel_spec, ACTION_DIM, SACConfig(utd=1, precision=precision))
        results[f"pixels_2x64_2_critics{suffix}_updates_per_s"] = _rate(lambda: agent.update([pixel_batch]), seconds)

    student_spec = _two_camera_spec(48)
    student_batch = _batch(student_spec, rng)
    for precision in ("fp32", "bf16"):
        student = SACAgent(student_spec, ACTION_DIM, SACConfig(precision=precision))
        optimizer = make_student_optimizer(student, lr=3e-4)
        results[f"distill_pixels_2x48_{precision}_updates_per_s"] = _rate(
            lambda: distill_update(student, optimizer, student_batch), seconds)
    report(results, args.out)


if __name__ == "__main__":
    main()
