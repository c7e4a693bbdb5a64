"""Decision time per slot on the running system: PEARL online, the identifying greedy, the oracle.

    .venv/bin/python benchmarks/bench_lifecycle.py [--slots 60] [--big-slots 15]

Prints, for the paper's system (80 users, 4 edge servers) and one ten times larger (800 users,
16 edge servers: the paper's four servers repeated four times, so the load per server stays):
each controller's compute per slot on one core - acting plus updating (PEARL's z inference, the
identifier's estimate) - median and p99 over the slots of a lifecycle stream that starts with
every user's context open (the costliest phase) and goes on greedily, and the oracle's solve
time (HiGHS) on the very same slots, with the ratio PEARL / oracle, after `WARMUP` untimed
slots. PEARL's networks are the quick profile's, freshly initialised at each size: the time does
not depend on the weights (a trained 80-user agent cannot read the 16-server observation).
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from ecmeta_lib.agents import ActionSpec, DiscreteSACAgent
from ecmeta_lib.config import EnvConfig, SystemConfig
from ecmeta_lib.lifecycle import EdgeCloudLifecycleEnv, LiveIdentifyGreedy, ScenarioConfig
from ecmeta_lib.lifecycle_controllers import PEARLOnline
from ecmeta_lib.oracle import oracle
from ecmeta_lib.profiles import get_profile

WARMUP = 5
"""Untimed slots first (torch's and HiGHS's first calls allocate and load)."""


def big_system() -> SystemConfig:
    s = SystemConfig()
    return replace(s, n_users=10 * s.n_users, n_servers=4 * s.n_servers,
                   es_gflops=s.es_gflops * 4, es_memory_gb=s.es_memory_gb * 4,
                   es_cores=s.es_cores * 4)


def time_size(system: SystemConfig, n_slots: int) -> dict[str, np.ndarray]:
    config = replace(EnvConfig(), system=system)
    scen = ScenarioConfig(n_slots=n_slots + WARMUP + 1, mean_interarrival_slots=10 * n_slots,
                          min_gap_slots=5 * n_slots)
    prof = get_profile("quick")
    out: dict[str, list[float]] = {"pearl_online": [], "identify_greedy": [], "oracle": []}
    for name in ("pearl_online", "identify_greedy"):
        env = EdgeCloudLifecycleEnv(scenario_seed=0, profile=scen, config=config)
        if name == "pearl_online":
            agent = DiscreteSACAgent(ActionSpec.from_env(env), prof.agent_config("pearl"), seed=0)
            ctrl = PEARLOnline(agent, n_context=n_slots // 2)
        else:
            ctrl = LiveIdentifyGreedy(n_context=9)
        obs, _ = env.reset()
        ctrl.reset(env)
        for t in range(n_slots + WARMUP):
            timed = t >= WARMUP
            if name == "pearl_online" and timed:
                t0 = time.perf_counter()
                o = env.unwrapped
                sol = oracle(o.system, o.condition, o.user_state, table=o.option_table)
                out["oracle"].append((time.perf_counter() - t0) * 1e3)
                del sol
            t0 = time.perf_counter()
            action = ctrl.act(obs)
            t1 = time.perf_counter()
            next_obs, reward, _, _, info = env.step(action)
            t2 = time.perf_counter()
            ctrl.observe(obs, action, reward, next_obs, info)
            if timed:
                out[name].append((t1 - t0 + time.perf_counter() - t2) * 1e3)
            obs = next_obs
    return {k: np.asarray(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", type=int, default=60, help="slots at 80 users")
    p.add_argument("--big-slots", type=int, default=15, help="slots at 800 users")
    args = p.parse_args()
    torch.set_num_threads(1)
    for label, system, n in (("80 users, 4 ES", SystemConfig(), args.slots),
                             ("800 users, 16 ES", big_system(), args.big_slots)):
        t = time_size(system, n)
        print(f"== {label}: {n} slots, 1 thread (ms per slot: p50 / p99)")
        for name, v in t.items():
            print(f"  {name:16s} {np.percentile(v, 50):8.2f} / {np.percentile(v, 99):8.2f}")
        ratio = np.percentile(t["pearl_online"], 99) / np.percentile(t["oracle"], 50)
        print(f"  PEARL p99 / oracle p50 = {ratio:.3f} (target <= 1/3)")


if __name__ == "__main__":
    main()
