"""Ray's overhead on the experiment grid: the same grid under the local process pool and under
Ray on this machine, in one process run, each into a fresh results folder (a temporary one).

Prints (no asserts) the grid's wall time under each executor and Ray's overhead against the
pool, in % of the pool's wall time:

* ``ray total``: start Ray on this machine (loopback, `--workers` CPUs), check the results
  folder from every node, run the grid, shut Ray down - what ``run --executor ray`` costs;
* ``ray grid``: the grid alone, with Ray already up - what a run on a standing cluster costs;
* ``sum of runs``: the runs' own wall times (done.json), summed: training under either executor
  should cost the same, so a difference here is contention, not scheduling.

It also checks that every run's final.csv is byte-identical under both executors.

Usage: python benchmarks/bench_ray.py [--profile quick] [--methods sac_aisf_1 sac_aisf_2]
                                      [--seeds 0] [--workers 2]
The defaults (two of the quick grid's shortest runs, 2 workers: ~4 min) keep `make bench` short;
the whole quick grid is ``--methods pearl sac_dt sac_t_m sac_aisf_1 sac_aisf_2 sac_aisf_3
--seeds 0 1 2`` (~20 min per executor on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from ecmeta_lib import executors, runner
from ecmeta_lib.profiles import METHODS


def _sum_of_runs(table: pd.DataFrame) -> float:
    return float(sum(json.loads((Path(d) / "done.json").read_text())["wall_s"]
                     for d in table.dir))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick")
    p.add_argument("--methods", nargs="+", default=["sac_aisf_1", "sac_aisf_2"],
                   choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--workers", type=int, default=2,
                   help="pool processes, and the CPUs of the Ray instance")
    args = p.parse_args()
    grid = dict(methods=args.methods, seeds=args.seeds, progress=False)
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        t = time.perf_counter()
        pool = runner.run_grid(args.profile, workers=args.workers,
                               results_root=Path(tmp) / "pool", **grid)
        pool_s = time.perf_counter() - t

        t = time.perf_counter()
        with executors.ray_session(num_cpus=args.workers):
            up_s = time.perf_counter() - t
            t_grid = time.perf_counter()
            ray = runner.run_grid(args.profile, executor="ray", results_root=Path(tmp) / "ray",
                                  **grid)
            grid_s = time.perf_counter() - t_grid
        ray_s = time.perf_counter() - t

        same = all((Path(a) / "final.csv").read_bytes() == (Path(b) / "final.csv").read_bytes()
                   for a, b in zip(pool.dir, ray.dir, strict=True))
        pool_runs, ray_runs = _sum_of_runs(pool), _sum_of_runs(ray)

    print(f"grid: profile {args.profile}, methods {' '.join(args.methods)}, seeds "
          f"{' '.join(map(str, args.seeds))} ({len(pool)} runs), {args.workers} workers")
    print(f"{'':22s}{'wall s':>9s}{'overhead':>10s}")
    print(f"{'process pool':22s}{pool_s:9.1f}")
    print(f"{'ray total':22s}{ray_s:9.1f}{100 * (ray_s - pool_s) / pool_s:+9.1f}%"
          f"   (Ray start-up {up_s:.1f} s)")
    print(f"{'ray grid (Ray up)':22s}{grid_s:9.1f}{100 * (grid_s - pool_s) / pool_s:+9.1f}%")
    print(f"sum of runs: pool {pool_runs:.1f} s, ray {ray_runs:.1f} s "
          f"({100 * (ray_runs - pool_runs) / pool_runs:+.1f}%)")
    print(f"final.csv identical under both executors: {same}")


if __name__ == "__main__":
    main()
