"""The results table's Markdown: one row per (condition, policy), notes for what does not vary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecmeta_lib.analysis import table_markdown


def _table(viol_b: float) -> pd.DataFrame:
    rows = []
    for cond in ("T1", "T2"):
        for m, crit in (("pearl", 0.025), ("sac_dt", 0.07), ("greedy", np.nan)):
            rows.append({"condition": cond, "method": m, "latency_s": 0.13, "ci_low_s": 0.12,
                         "ci_high_s": 0.14, "ci_kind": "t", "gap_to_oracle_pct": 5.0,
                         "accuracy_violation_rate": viol_b if m == "sac_dt" else 0.0025,
                         "cloud_share": 0.2, "critic_rmse_s": crit})
    return pd.DataFrame(rows)


def test_constant_violations_become_a_note_and_the_critic_error_a_table_of_its_own() -> None:
    md = table_markdown(_table(0.0025))
    head = md.splitlines()[0]
    assert "accuracy violations" not in head and "critic" not in head
    assert "Accuracy violations are the same for every policy of a condition (T1 0.25 %" in md
    crit = [line for line in md.splitlines() if line.startswith("| SAC_DT |")]
    assert crit == ["| SAC_DT | 70.0 |"]  # once, not once per condition
    assert md.count("| T1 |") == 3


def test_violations_that_differ_keep_their_column() -> None:
    md = table_markdown(_table(0.01))
    assert "accuracy violations" in md.splitlines()[0]
    assert "1.00 %" in md and "are the same for every policy" not in md
