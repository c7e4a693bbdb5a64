"""The paper's qualitative claims of Sec. V, checked against our runs with numbers.

Each check turns a sentence of the paper into a measurable statistic over seeds, and a verdict
rule stated next to it: "supported" when the effect has the claimed sign and its 95% interval over
seeds excludes no effect, "partly" when the sign is right but the interval includes zero (or only
some conditions agree), "not supported" otherwise. The rules are ours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .conditions import TEST_NAMES
from .stats import mean_ci

AISF = {f"sac_aisf_{i}": name for i, name in enumerate(TEST_NAMES, start=1)}


def _verdict(lo: float, hi: float, mean: float, positive_is_claim: bool = True) -> str:
    sign = mean > 0 if positive_is_claim else mean < 0
    if not np.isfinite(mean):
        return "not measurable"
    if not sign:
        return "not supported"
    excludes_zero = (lo > 0) if positive_is_claim else (hi < 0)
    return "supported" if np.isfinite(lo) and excludes_zero else "partly"


def _final(finals: pd.DataFrame, method: str, cond: str) -> pd.Series:
    g = finals[(finals.method == method) & (finals.condition == cond)]
    return g.set_index("seed").mean_latency_s


def steps_to_reach(curves: pd.DataFrame, target: float) -> float:
    """First env_steps at which a learning curve (seed mean if several) is at or below `target`."""
    mean = curves.groupby("env_steps").mean_latency_s.mean().sort_index()
    hit = mean[mean <= target]
    return float(hit.index[0]) if len(hit) else float("nan")


def _last(curve: pd.DataFrame) -> float:
    """Latency at the last evaluation of a learning curve (seed mean)."""
    return float(curve.groupby("env_steps").mean_latency_s.mean().sort_index().iloc[-1])


def tail_instability(curves: pd.DataFrame, fraction: float = 0.5) -> pd.Series:
    """Per seed: std of the latency over the last `fraction` of evaluations, relative to its mean
    (a coefficient of variation; lower = more stable convergence)."""
    out = {}
    for seed, g in curves.groupby("seed"):
        g = g.sort_values("env_steps")
        values = g.mean_latency_s.to_numpy()
        tail = values[min(int(len(values) * (1 - fraction)), max(len(values) - 2, 0)):]
        out[seed] = float(tail.std() / tail.mean()) if tail.size > 1 else float("nan")
    return pd.Series(out)


def check_claims(curves: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the statistic, its mean and 95% CI over seeds, and the verdict."""
    rows = []

    # 1. SAC trained on one condition suffers a policy mismatch on the others.
    diffs = []
    for method, own in AISF.items():
        for cond in TEST_NAMES:
            if cond == own:
                continue
            mine = _final(finals, method, cond)
            native = _final(finals, f"sac_aisf_{TEST_NAMES.index(cond) + 1}", cond)
            common = mine.index.intersection(native.index)
            diffs.extend(100 * (mine[common] / native[common] - 1).to_numpy())
    m, lo, hi = mean_ci(diffs)
    rows.append({"claim": "SAC trained on one condition suffers a policy mismatch on the others",
                 "statistic": "latency of SAC_AiSF_i on Tj (j != i) over SAC_AiSF_j on Tj, % above",
                 "mean": m, "ci_low": lo, "ci_high": hi, "verdict": _verdict(lo, hi, m)})

    # 2. DT-trained agents converge faster: per seed, the env steps each agent needs to get within
    # 10% of its own final latency on Ti, counted per training condition (a DT agent's steps are
    # spread over six conditions), SAC_DT against SAC_AiSF_i.
    ratios = []
    for cond in TEST_NAMES:
        native = curves[(curves.method == f"sac_aisf_{TEST_NAMES.index(cond) + 1}")
                        & (curves.condition == cond)]
        dt = curves[(curves.method == "sac_dt") & (curves.condition == cond)]
        for seed in sorted(set(native.seed) & set(dt.seed)):
            n_s, d_s = native[native.seed == seed], dt[dt.seed == seed]
            t_native = steps_to_reach(n_s, 1.1 * _last(n_s))
            t_dt = steps_to_reach(d_s, 1.1 * _last(d_s)) / 6
            ratios.append(100 * (1 - t_dt / max(t_native, 1)))
    m, lo, hi = mean_ci(ratios)
    rows.append({"claim": "agents trained on the digital twins converge faster",
                 "statistic": "fewer env steps per training condition for SAC_DT than SAC_AiSF_i "
                              "to get within 10% of its final latency on Ti, % (seeds x T1-T3)",
                 "mean": m, "ci_low": lo, "ci_high": hi, "verdict": _verdict(lo, hi, m)})

    # 3a. SAC_DT ends slightly worse than condition-specific training.
    gaps = []
    for cond in TEST_NAMES:
        dt, native = _final(finals, "sac_dt", cond), _final(
            finals, f"sac_aisf_{TEST_NAMES.index(cond) + 1}", cond)
        common = dt.index.intersection(native.index)
        gaps.extend(100 * (dt[common] / native[common] - 1).to_numpy())
    m, lo, hi = mean_ci(gaps)
    rows.append({"claim": "SAC_DT ends slightly worse than training on the condition itself",
                 "statistic": "final latency of SAC_DT over SAC_AiSF_i on Ti, % above",
                 "mean": m, "ci_low": lo, "ci_high": hi, "verdict": _verdict(lo, hi, m)})

    # 3b/4b. stability of convergence: SAC_DT less stable than PEARL; PEARL the most stable.
    inst = {}
    for method in sorted(curves.method.unique()):
        g = curves[curves.method == method]
        per_cond = [tail_instability(g[g.condition == c]).mean() for c in TEST_NAMES]
        finite = [v for v in per_cond if np.isfinite(v)]
        inst[method] = float(np.mean(finite)) if finite else float("nan")
    if "pearl" in inst and "sac_dt" in inst:
        per_seed = []
        for cond in TEST_NAMES:
            p = tail_instability(curves[(curves.method == "pearl") & (curves.condition == cond)])
            d = tail_instability(curves[(curves.method == "sac_dt") & (curves.condition == cond)])
            common = p.index.intersection(d.index)
            per_seed.extend(100 * (d[common] - p[common]).to_numpy())
        m, lo, hi = mean_ci(per_seed)
        most_stable = min(inst, key=lambda k: np.nan_to_num(inst[k], nan=np.inf))
        verdict = _verdict(lo, hi, m)
        if verdict == "supported" and most_stable != "pearl":
            verdict = "partly"
        rows.append({"claim": "SAC_DT is less stable; PEARL converges most stably",
                     "statistic": "tail coefficient of variation of SAC_DT minus PEARL, points "
                                  f"(most stable method overall: {most_stable})",
                     "mean": m, "ci_low": lo, "ci_high": hi, "verdict": verdict})

    # 4a. PEARL adapts to unseen conditions before retraining (beats SAC_DT, no gradient step).
    gains = []
    for cond in TEST_NAMES:
        p, d = _final(finals, "pearl", cond), _final(finals, "sac_dt", cond)
        common = p.index.intersection(d.index)
        gains.extend(100 * (1 - p[common] / d[common]).to_numpy())
    m, lo, hi = mean_ci(gains)
    rows.append({"claim": "PEARL adapts to unseen conditions before any retraining",
                 "statistic": "final latency of adapted PEARL below SAC_DT on T1-T3, %",
                 "mean": m, "ci_low": lo, "ci_high": hi, "verdict": _verdict(lo, hi, m)})
    return pd.DataFrame(rows)
