"""Throughput of the environment and solve time of P2, printed (no assertions on time).

1. Environment slots per second: 80 users, uniformly random actions, one process
   (target: >= 1,000 slots/s).
2. P2 exact solve time on 40-user instances where BOTH the cores and the memory bind at the
   optimum, against Gurobi and HiGHS on the same instances in the same run
   (target: our median >= 10x faster than Gurobi's).

Instances come from real slots: 40 users of the paper's system under condition G1, random
pre-processing method and model, all allocated to one random edge server; savings are
d^C - d^E and weights the chosen models' memory. Capacities are then set so that the optimum has
exactly `cores` users and dropping either constraint would raise the saving (verified by our
solver and by Gurobi). Solver timings include building the model, as a caller of each pays it;
Gurobi's own optimize() time is printed too.

    .venv/bin/python benchmarks/bench_env.py [--slots 3000] [--instances 200]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import ecmeta_lib
from ecmeta_lib import SystemConfig, make_task_set, option_table
from ecmeta_lib.knapsack import solve_p2
from ecmeta_lib.system import sample_user_state

N_USERS_P2 = 40


def bench_env(n_slots: int, seed: int) -> None:
    env = gym.make(ecmeta_lib.ENV_ID)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(n_slots)]
    env.reset(seed=seed)
    to_cloud = 0
    start = time.perf_counter()
    for action in actions:
        _, _, _, truncated, info = env.step(action)
        to_cloud += info["to_cloud"]
        if truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    print(f"env: {n_slots} slots of 80 users with random actions in {elapsed:.2f} s "
          f"-> {n_slots / elapsed:,.0f} slots/s (target >= 1,000); "
          f"{to_cloud / n_slots:.1f} users pushed to the cloud per slot")


def value(saving: np.ndarray, keep: np.ndarray) -> float:
    return float(saving[keep].sum())


def make_instances(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, int, float]]:
    """40-user P2 instances from real slot values where both constraints bind at the optimum."""
    rng = np.random.default_rng(seed)
    ts = make_task_set(seed)
    cfg = SystemConfig()
    cond = ts["G1"]
    out = []
    while len(out) < n:
        table = option_table(ts.system, cond, sample_user_state(rng, cfg))
        users = rng.choice(cfg.n_users, N_USERS_P2, replace=False)
        m = rng.integers(0, cfg.n_methods, N_USERS_P2)
        j = rng.integers(0, cfg.n_models, N_USERS_P2)
        h = int(rng.integers(0, cfg.n_servers))
        saving = table.cloud_s[users, m] - table.edge_s[users, m, j, h]
        memory = table.memory_mb[users, j].astype(float)
        pos = saving > 0
        if pos.sum() < 8:
            continue
        cores = max(1, int(round(pos.sum() * rng.uniform(0.4, 0.7))))
        cap = float(np.rint(np.sort(memory[pos])[:cores].sum() * rng.uniform(1.05, 1.6)))
        keep = solve_p2(saving, memory, cores, cap)
        v = value(saving, keep)
        cores_bind = v < value(saving, solve_p2(saving, memory, N_USERS_P2, cap)) - 1e-9
        memory_bind = v < value(saving, solve_p2(saving, memory, cores, 1e12)) - 1e-9
        if cores_bind and memory_bind and keep.sum() == cores:
            out.append((saving, memory, cores, cap))
    return out


def time_calls(fn, instances, repeats: int) -> np.ndarray:
    """Per-instance best-of-`repeats` wall time, s (the minimum filters scheduler noise)."""
    times = np.empty(len(instances))
    for i, inst in enumerate(instances):
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            fn(*inst)
            best = min(best, time.perf_counter() - t)
        times[i] = best
    return times


def bench_p2(n_instances: int, seed: int, repeats: int) -> None:
    import gurobipy as gp
    import highspy

    instances = make_instances(n_instances, seed)
    genv = gp.Env(params={"OutputFlag": 0})
    grb_runtime: list[float] = []

    def gurobi(saving, memory, cores, cap) -> float:
        with gp.Model(env=genv) as model:
            model.Params.MIPGap = 0.0
            x = model.addMVar(saving.size, vtype=gp.GRB.BINARY)
            model.addConstr(x.sum() <= cores)
            model.addConstr(memory @ x <= cap)
            model.setObjective(saving @ x, gp.GRB.MAXIMIZE)
            model.optimize()
            grb_runtime.append(model.Runtime)
            return model.ObjVal

    def highs(saving, memory, cores, cap) -> float:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        n = saving.size
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, 2
        lp.col_cost_ = -saving
        lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
        lp.row_lower_, lp.row_upper_ = np.full(2, -highspy.kHighsInf), np.array([cores, cap])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.arange(0, 2 * n + 1, 2, dtype=np.int32)
        lp.a_matrix_.index_ = np.tile(np.array([0, 1], dtype=np.int32), n)
        lp.a_matrix_.value_ = np.column_stack([np.ones(n), memory]).ravel()
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
        h.passModel(lp)
        h.run()
        return -h.getInfo().objective_function_value

    # exactness first: the three agree on every instance
    for inst in instances:
        ours = value(inst[0], solve_p2(*inst))
        for name, fn in (("Gurobi", gurobi), ("HiGHS", highs)):
            other = fn(*inst)
            if abs(ours - other) > 1e-7 * max(1.0, abs(other)):
                raise RuntimeError(f"{name} finds {other}, ours {ours}: solve_p2 is not exact")
    kept = np.array([solve_p2(*inst).sum() for inst in instances])
    positive = np.array([(inst[0] > 0).sum() for inst in instances])
    print(f"P2: {len(instances)} instances of {N_USERS_P2} users, {positive.mean():.1f} with a "
          f"positive saving on average, {kept.mean():.1f} kept; cores and memory both bind at "
          f"every optimum; all three solvers agree")

    grb_runtime.clear()
    t_ours = time_calls(solve_p2, instances, repeats)
    t_grb = time_calls(gurobi, instances, repeats)
    grb_own = np.asarray(grb_runtime).reshape(len(instances), repeats).min(axis=1)
    t_hig = time_calls(highs, instances, repeats)
    med = {k: float(np.median(v)) * 1e3 for k, v in
           (("ours", t_ours), ("gurobi", t_grb), ("gurobi_opt", grb_own), ("highs", t_hig))}
    print(f"  median per solve: ours {med['ours']:.3f} ms (p90 "
          f"{np.percentile(t_ours, 90) * 1e3:.3f} ms) | Gurobi {med['gurobi']:.3f} ms "
          f"(optimize() alone {med['gurobi_opt']:.3f} ms) | HiGHS {med['highs']:.3f} ms")
    print(f"  speed-up of ours: {med['gurobi'] / med['ours']:.1f}x vs Gurobi "
          f"({med['gurobi_opt'] / med['ours']:.1f}x vs its optimize() alone), "
          f"{med['highs'] / med['ours']:.1f}x vs HiGHS (target >= 10x vs Gurobi)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=3000)
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    bench_env(args.slots, args.seed)
    bench_p2(args.instances, args.seed, args.repeats)


if __name__ == "__main__":
    main()
