"""Oracle and harness speed, plus the heuristics' table on T1-T3 (prints figures, asserts none).

    .venv/bin/python benchmarks/bench_oracle.py [--slots 50] [--table-slots 200] [--no-table]

* oracle solve time per paper-sized slot (80 users, 4 servers), median and p90 over `--slots`
  slots of T1, with pruning (default) and without it, for HiGHS and, when usable, Gurobi
  (the unpruned 80-user model exceeds the size-limited pip licence, so Gurobi is timed pruned);
* the harness's slots per second with and without the oracle;
* random / local / nearest / greedy on T1-T3 (task_seed 0, seed 0): mean latency, 95 % bootstrap
  CI, oracle latency and gap to it.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from ecmeta_lib import SystemConfig, make_task_set
from ecmeta_lib.evaluation import clear_oracle_cache, compare, evaluate
from ecmeta_lib.oracle import GurobiLicenseError, oracle
from ecmeta_lib.policies import GreedyPolicy, LocalPolicy, NearestPolicy, RandomPolicy
from ecmeta_lib.slot import option_table
from ecmeta_lib.system import sample_user_state


def time_oracle(n_slots: int) -> None:
    ts = make_task_set(0)
    cond = ts["T1"]
    rng = np.random.default_rng(123)
    slots = []
    for _ in range(n_slots):
        state = sample_user_state(rng, SystemConfig())
        slots.append((state, option_table(ts.system, cond, state)))
    oracle(ts.system, cond, slots[0][0])  # warm-up: imports, HiGHS banner
    backends = ["highs"]
    try:
        oracle(ts.system, cond, slots[0][0], "gurobi")  # warm-up: licence check, environment
        backends.append("gurobi")
    except Exception as err:  # noqa: BLE001 - not installed or not licensed: time HiGHS only
        print(f"(Gurobi not timed: {type(err).__name__}: {err})")
    print(f"oracle, 80 users x 4 servers, T1, {n_slots} slots; the slot's option table is "
          "precomputed (as in the harness); 'no solve' = no capacity binds")
    print(f"{'backend':8} {'pruning':8} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} "
          f"{'vars (median)':>14} {'no solve':>9}")
    ref = None
    for backend in backends:
        for prune in (True, False):
            times, nvars, fast, values = [], [], 0, []
            try:
                for state, table in slots:
                    t0 = time.perf_counter()
                    res = oracle(ts.system, cond, state, backend, prune=prune, table=table)
                    times.append(time.perf_counter() - t0)
                    nvars.append(res.n_vars)
                    fast += res.status != "optimal"
                    values.append(res.total_latency)
            except GurobiLicenseError as err:
                print(f"{backend:8} {'off' if not prune else 'on':8} refused by the licence: "
                      f"{str(err).split(':')[0]}")
                continue
            ms = np.array(times) * 1e3
            print(f"{backend:8} {'on' if prune else 'off':8} {np.median(ms):10.2f} "
                  f"{np.quantile(ms, 0.9):8.2f} {ms.max():8.2f} {int(np.median(nvars)):14d} "
                  f"{fast:9d}")
            if ref is None:
                ref = np.array(values)
            else:
                dev = np.max(np.abs(np.array(values) - ref) / ref)
                assert dev < 1e-6, f"{backend} prune={prune} disagrees by {dev:.2e}"
    t0 = time.perf_counter()
    for state, _ in slots:
        option_table(ts.system, cond, state)
    print(f"(option table alone: {(time.perf_counter() - t0) / n_slots * 1e3:.2f} ms per slot; "
          "all backends/pruning agree to 1e-6)")


def time_harness(n_slots: int) -> None:
    ts = make_task_set(0)
    for with_oracle in (False, True):
        clear_oracle_cache()
        t0 = time.perf_counter()
        evaluate(GreedyPolicy(), "T2", n_slots=n_slots, seed=7, task_set=ts,
                 with_oracle=with_oracle)
        dt = time.perf_counter() - t0
        print(f"harness, greedy policy, {n_slots} slots, oracle {'on ' if with_oracle else 'off'}:"
              f" {n_slots / dt:7.1f} slots/s")
    t0 = time.perf_counter()
    evaluate(GreedyPolicy(), "T2", n_slots=n_slots, seed=7, task_set=ts)
    print(f"harness, oracle from the cache: {n_slots / (time.perf_counter() - t0):7.1f} slots/s")


def heuristic_table(n_slots: int) -> pd.DataFrame:
    pols = [RandomPolicy(0), LocalPolicy(), NearestPolicy(), GreedyPolicy()]
    df = compare(pols, ["T1", "T2", "T3"], n_slots=n_slots, seed=0, task_seed=0)
    out = df[["condition", "policy", "mean_latency_s", "ci_low_s", "ci_high_s",
              "oracle_latency_s", "gap_to_oracle_pct", "accuracy_violation_rate",
              "cloud_share", "local_share", "edge_share"]].copy()
    for c in ("mean_latency_s", "ci_low_s", "ci_high_s", "oracle_latency_s"):
        out[c.replace("_s", "_ms")] = out.pop(c) * 1e3
    return out[["condition", "policy", "mean_latency_ms", "ci_low_ms", "ci_high_ms",
                "oracle_latency_ms", "gap_to_oracle_pct", "accuracy_violation_rate",
                "cloud_share", "local_share", "edge_share"]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=50, help="slots timed per oracle setting")
    ap.add_argument("--harness-slots", type=int, default=100)
    ap.add_argument("--table-slots", type=int, default=200)
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args(argv)
    time_oracle(args.slots)
    print()
    time_harness(args.harness_slots)
    if not args.no_table:
        print()
        t0 = time.perf_counter()
        table = heuristic_table(args.table_slots)
        print(f"heuristics on T1-T3, task_seed 0, seed 0, {args.table_slots} slots "
              f"({time.perf_counter() - t0:.1f} s):")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main(sys.argv[1:])
