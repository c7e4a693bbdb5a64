"""Print the README's headline table (gap to the per-slot oracle, task seeds 0 and 42) from the
results tables that `python -m ecmeta_lib report` writes.

    .venv/bin/python tools/headline_table.py [TASK_SEED_0_CSV TASK_SEED_42_CSV]

(default: figures/results_table.csv figures/task_seed_42/results_table.csv)

Learned methods: mean over seeds and the 95 % Student-t interval over seeds, in points of gap (the
latency interval divided by the condition's one oracle latency); the deterministic yardsticks: the
gap alone (their slot-bootstrap interval is in the CSV).
"""

from __future__ import annotations

import sys

import pandas as pd

ROWS = [("oracle", "oracle (per-slot MILP)"), ("greedy", "greedy, knows the condition"),
        ("identify_greedy[20]", "identify-then-greedy, 20 context slots"),
        ("pearl", "**PEARL, adapted with 20 transitions**"),
        ("sac_t_m", "SAC_T_M (trained on T1-T3)"),
        ("sac_dt", "SAC_DT (trained on the twins, no adaptation)"),
        ("own", "SAC_AiSF_i on its own Ti"),
        ("blind_greedy", "blind greedy (never sees the condition)")]
LEARNED = {"pearl", "sac_t_m", "sac_dt", "own"}


def cells(table: pd.DataFrame, method: str) -> list[str]:
    out = []
    for i, cond in enumerate(("T1", "T2", "T3"), start=1):
        name = f"sac_aisf_{i}" if method == "own" else method
        r = table[(table.method == name) & (table.condition == cond)].iloc[0]
        gap = r.gap_to_oracle_pct
        if method == "oracle":
            out.append("0")
        elif method in LEARNED:
            lo = 100 * (r.ci_low_s / r.oracle_latency_s - 1)
            hi = 100 * (r.ci_high_s / r.oracle_latency_s - 1)
            text = f"+{gap:.1f}"
            out.append((f"**{text}**" if method == "pearl" else text) + f" [{lo:.1f}, {hi:.1f}]")
        else:
            out.append(f"+{gap:.1f}")
    return out


def main(paths: list[str]) -> None:
    tables = [pd.read_csv(p) for p in paths]
    print("| policy | task seed 0: T1 | T2 | T3 | task seed 42: T1 | T2 | T3 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for method, label in ROWS:
        print("| " + " | ".join([label, *cells(tables[0], method), *cells(tables[1], method)])
              + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["figures/results_table.csv", "figures/task_seed_42/results_table.csv"])
