"""Agent update throughput at the `quick` and `paper` profile sizes, against this machine's matmul.

Prints (no asserts), for 1 thread (what each training run uses) and 2 threads: updates per
second (one update = one epoch of Algorithm 1 on K' conditions, averaged over lambda2 cycles, so
temperature and actor steps are included at their cadence), the analytic FLOPs of one update,
and the achieved FLOP/s as a fraction of the machine's own measured torch matmul FLOP/s (same
thread count, same run: blocks of updates alternate with matmul measurements and the median of
the per-block ratios is reported, with its range, since a shared machine drifts). Then the grid's
own use of the machine: ``--workers`` processes of 1 thread each (as ``make reproduce`` runs its
2 workers) update at the same time, then all measure matmul at the same time, and the summed
update FLOP/s is divided by the summed matmul FLOP/s (``--pin``: also with one worker per core).
A profile whose update is compiled (``agent.compiled_update``) is also measured eager, on the
same samples, so the line below it shows what compiling buys.

FLOP count: a Linear layer costs 2 * in * out FLOPs per row; the structured networks apply their
layers once per user (rows = batch * users). Forward + backward = 3x forward for every network a
loss is differentiated through (critics in the critic and actor losses, actor, encoder); target
networks and no-grad passes count 1x. Elementwise ops (softmax, outer products) are ignored.

Usage: python benchmarks/bench_agents.py [--threads 1 2] [--profiles quick,paper] [--blocks 5]
       [--workers 2] [--pin]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from multiprocessing import get_context

import numpy as np
import torch
from torch import nn

from ecmeta_lib.agents import ActionSpec, DiscreteSACAgent
from ecmeta_lib.env import EdgeCloudEnv
from ecmeta_lib.profiles import get_profile


def linear_flops(module: nn.Module, rows_per_sample: int) -> float:
    """Forward FLOPs per sample of all Linear layers in `module`."""
    return float(sum(2 * m.in_features * m.out_features for m in module.modules()
                     if isinstance(m, nn.Linear)) * rows_per_sample)


def update_flops(agent: DiscreteSACAgent, n: int, n_ctx: int, lambda1: int, lambda2: int) -> float:
    """Analytic FLOPs of one epoch (n = K' * batch samples, n_ctx context transitions in all)."""
    rows = agent.spec.n_users if agent.cfg.net.arch == "structured" else 1
    fa, fc = linear_flops(agent.actor, rows), linear_flops(agent.critic1, rows)
    enc = 0.0
    if agent.encoder is not None:  # the per-user encoder runs once per (transition, user)
        enc_rows = agent.spec.n_users if agent.cfg.encoder.latent_per_user else 1
        enc = 3 * linear_flops(agent.encoder, enc_rows) * n_ctx
    if agent.cfg.actor.joint_actor:
        # one pass per critic gives every joint action's value (reused by the actor loss);
        # the actor runs forward when the temperature or the actor steps, backward for the actor
        both = math.lcm(lambda1, lambda2)
        pi_forward = 1 / lambda1 + 1 / lambda2 - 1 / both
        return 3 * len(agent.critics) * fc * n + enc + fa * n * pi_forward + 2 * fa * n / lambda2
    total = 3 * 2 * fc * n  # twin critics, forward + backward
    if agent.cfg.critic.gamma > 0:
        total += (fa + 2 * fc) * n  # target actor and target critics, forward only
    if agent.encoder is not None:  # the per-user encoder runs once per (transition, user)
        enc_rows = agent.spec.n_users if agent.cfg.encoder.latent_per_user else 1
        total += 3 * linear_flops(agent.encoder, enc_rows) * n_ctx
    total += fa * n / lambda1  # temperature: actor forward, no grad
    total += (3 * fa + 3 * 2 * fc) * n / lambda2  # actor loss through actor and both critics
    return total


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - t) / 1e9


def setup(profile_name: str, eager: bool = False):
    """PEARL's agent at `profile_name`'s size, K' random batches and contexts, its FLOPs/update
    (``eager``: with the profile's compiled update switched off)."""
    prof = get_profile(profile_name)
    if eager:
        prof = dataclasses.replace(prof, agent=prof.agent.with_(compiled_update=False))
    spec = ActionSpec.from_env(EdgeCloudEnv(config=prof.env))
    agent = DiscreteSACAgent(spec, prof.agent, seed=0)  # PEARL's agent (with encoder)
    rng = np.random.default_rng(0)
    # the same samples per gradient step as training: K' conditions of batch_size slots
    kp, b, c = prof.k_prime, prof.batch_size, prof.context_size

    def data(n: int) -> dict[str, np.ndarray]:
        return {"obs": rng.random((n, spec.obs_dim), dtype=np.float32),
                "next_obs": rng.random((n, spec.obs_dim), dtype=np.float32),
                "action": rng.integers(0, spec.heads, size=(n, spec.n_users, 3)),
                "reward": -rng.random(n).astype(np.float32),
                "latency": rng.random((n, spec.n_users), dtype=np.float32) + 0.05,
                "decision": rng.integers(0, (spec.heads[0], spec.heads[1] + 1, spec.heads[2]),
                                         size=(n, spec.n_users, 3))}

    batches, contexts = [data(b) for _ in range(kp)], [data(c) for _ in range(kp)]
    agent.update(batches, contexts, 1, 1, 1)  # warm-up
    flops = update_flops(agent, kp * b, kp * c, prof.lambda1, prof.lambda2)
    return prof, agent, batches, contexts, flops


def timed_updates(prof, agent, batches, contexts, n_updates: int) -> float:
    """Seconds per update, averaged over `n_updates` epochs (lambda2 cycles)."""
    t = time.perf_counter()
    for epoch in range(1, n_updates + 1):
        agent.update(batches, contexts, epoch, prof.lambda1, prof.lambda2)
    return (time.perf_counter() - t) / n_updates


def bench(profile_name: str, n_updates: int, blocks: int, eager: bool = False) -> None:
    t = time.perf_counter()
    prof, agent, batches, contexts, flops = setup(profile_name, eager)
    setup_s = time.perf_counter() - t  # includes compiling (the warm-up update)
    kp, b = prof.k_prime, prof.batch_size
    # blocks of updates and of matmuls alternate, so a shared machine's drift hits both alike;
    # the ratio is taken block by block and its median reported
    seconds, ratios = [], []
    for _ in range(blocks):
        dt = timed_updates(prof, agent, batches, contexts, n_updates)
        peak = matmul_gflops()
        seconds.append(dt)
        ratios.append(flops / dt / 1e9 / peak)
    dt, ratio = float(np.median(seconds)), float(np.median(ratios))
    label = profile_name + (", eager" if eager else "")
    mode = "compiled" if prof.agent.optim.compiled_update else "eager"
    print(f"[{label}] {torch.get_num_threads()} thread(s), arch={prof.agent.net.arch} "
          f"hidden={prof.agent.net.hidden}x{prof.agent.net.n_layers} batch={kp}x{b} {mode}: "
          f"{1 / dt:8.2f} updates/s, {flops / 1e9:7.3f} GFLOP/update, "
          f"{flops / dt / 1e9:6.1f} GFLOP/s -> {100 * ratio:5.1f} % of matmul "
          f"(median of {blocks} alternating blocks; range {100 * min(ratios):.1f}-"
          f"{100 * max(ratios):.1f} %; set-up and first update {setup_s:.1f} s)")
    if eager:
        return
    # where the time goes: the top operators of a few updates under the torch profiler
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof_run:
        for epoch in range(1, max(prof.lambda2, 4) + 1):
            agent.update(batches, contexts, epoch, prof.lambda1, prof.lambda2)
    events = sorted(prof_run.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"[{profile_name}] time by operator (self CPU): " + ", ".join(
        f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:6]))


def _worker(rank: int, profile_name: str, n_updates: int, blocks: int, pin: bool,
            barrier, out) -> None:
    """One grid worker: 1 thread (optionally pinned to core `rank`), update and matmul blocks in
    step with the other workers (a barrier before each), its timings sent to `out`."""
    if pin:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[rank]})
    torch.set_num_threads(1)
    prof, agent, batches, contexts, flops = setup(profile_name)
    for _ in range(blocks):
        barrier.wait()
        dt = timed_updates(prof, agent, batches, contexts, n_updates)
        barrier.wait()
        out.put((rank, flops / dt / 1e9, matmul_gflops()))


def bench_workers(profile_name: str, workers: int, n_updates: int, blocks: int,
                  pin: bool) -> None:
    """The grid's use of the machine: `workers` processes of 1 thread each (as `make reproduce`
    runs them) update at once, then all measure matmul at once; per block, the summed update
    FLOP/s over the summed matmul FLOP/s."""
    ctx = get_context("spawn")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, profile_name, n_updates, blocks, pin,
                                               barrier, out)) for r in range(workers)]
    for proc in procs:
        proc.start()
    rows = [out.get() for _ in range(workers * blocks)]
    for proc in procs:
        proc.join()
    # each worker's k-th report is its k-th block: sum over workers, block by block
    by_rank = [[r[1:] for r in rows if r[0] == rank] for rank in range(workers)]
    upd = [sum(w[k][0] for w in by_rank) for k in range(blocks)]
    mm = [sum(w[k][1] for w in by_rank) for k in range(blocks)]
    ratios = [u / m for u, m in zip(upd, mm, strict=True)]
    print(f"[{profile_name}] {workers} workers x 1 thread{' (pinned)' if pin else ''}: "
          f"{np.median(upd):6.1f} GFLOP/s of updates, {np.median(mm):6.1f} GFLOP/s of matmul "
          f"-> {100 * np.median(ratios):5.1f} % of matmul (median of {blocks} blocks; range "
          f"{100 * min(ratios):.1f}-{100 * max(ratios):.1f} %)")


def sizes(profile_name: str, blocks: int) -> tuple[int, int]:
    """(updates per block, blocks): one lambda2 cycle per paper block (40 epochs take a while),
    ten per block of the shorter profiles."""
    if profile_name == "paper":
        return get_profile(profile_name).lambda2, 2
    return get_profile(profile_name).lambda2 * 10, blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts to measure (a training run uses 1, see runner.RUN_THREADS)")
    ap.add_argument("--profiles", default="quick,paper")
    ap.add_argument("--blocks", type=int, default=5, help="alternating update/matmul blocks")
    ap.add_argument("--workers", type=int, default=2,
                    help="concurrent 1-thread processes for the grid-like measurement "
                         "(make reproduce runs 2); below 2 skips it")
    ap.add_argument("--pin", action="store_true",
                    help="also measure the workers pinned one per core")
    args = ap.parse_args()
    print(f"torch {torch.__version__}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"{threads} thread(s): matmul 1024^2 {matmul_gflops():.1f} GFLOP/s")
        for name in args.profiles.split(","):
            bench(name, *sizes(name, args.blocks))
            if get_profile(name).agent.optim.compiled_update:
                bench(name, *sizes(name, args.blocks), eager=True)
    if args.workers > 1:
        for name in args.profiles.split(","):
            for pin in (False, True) if args.pin else (False,):
                bench_workers(name, args.workers, *sizes(name, args.blocks), pin=pin)


if __name__ == "__main__":
    main()
