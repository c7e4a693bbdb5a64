"""The benchmark scripts run (their figures are printed, never asserted: timing is not tested)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_agents_prints_every_measurement_at_smoke_size():
    # 1 thread and the 2-worker grid-like measurement, one block each, at the smoke size
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_agents.py"), "--threads", "1",
         "--profiles", "smoke", "--blocks", "1", "--workers", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=True).stdout
    assert re.search(r"\[smoke\] 1 thread\(s\).*updates/s.*% of matmul", out)
    assert re.search(r"\[smoke\] time by operator \(self CPU\): aten::", out)
    line = re.search(r"\[smoke\] 2 workers x 1 thread: +([\d.]+) GFLOP/s of updates, +([\d.]+) "
                     r"GFLOP/s of matmul -> +([\d.]+) % of matmul", out)
    assert line, out
    upd, mm, pct = (float(g) for g in line.groups())
    assert upd > 0 and mm > 0
    # one block: its summed rates' ratio, up to the rounding of the printed rates (0.05 each;
    # on a loaded machine the update rate can print as a few tenths)
    rounding = 100 * (0.05 / mm + upd * 0.05 / mm**2) + 0.05
    assert abs(100 * upd / mm - pct) <= 0.05 * pct + rounding
