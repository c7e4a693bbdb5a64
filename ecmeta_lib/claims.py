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


def _native(cond: str) -> str:
    """The SAC baseline trained on test condition `cond` alone."""
    return f"sac_aisf_{TEST_NAMES.index(cond) + 1}"


def _paired_pct(a: pd.Series, b: pd.Series) -> np.ndarray:
    """100 (a / b - 1) over the seeds both series have: how much a is above b, in %."""
    common = a.index.intersection(b.index)
    return (100 * (a[common] / b[common] - 1)).to_numpy()


def _row(claim: str, statistic: str, values: list[float] | np.ndarray,
         verdict: str | None = None) -> dict:
    m, lo, hi = mean_ci(values)
    return {"claim": claim, "statistic": statistic, "mean": m, "ci_low": lo, "ci_high": hi,
            "verdict": verdict or _verdict(lo, hi, m)}


def check_claims(curves: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the statistic, its mean and 95% CI over seeds, and the verdict."""
    rows = []

    # 1. SAC trained on one condition suffers a policy mismatch on the others.
    diffs = [v for method, own in AISF.items() for cond in TEST_NAMES if cond != own
             for v in _paired_pct(_final(finals, method, cond),
                                  _final(finals, _native(cond), cond))]
    rows.append(_row("SAC trained on one condition suffers a policy mismatch on the others",
                     "latency of SAC_AiSF_i on Tj (j != i) over SAC_AiSF_j on Tj, % above", diffs))

    # 2. DT-trained agents converge faster: per seed, the env steps each agent needs to get within
    # 10% of its own final latency on Ti, counted per training condition (a DT agent's steps are
    # spread over six conditions), SAC_DT against SAC_AiSF_i.
    ratios = []
    for cond in TEST_NAMES:
        native = curves[(curves.method == _native(cond)) & (curves.condition == cond)]
        dt = curves[(curves.method == "sac_dt") & (curves.condition == cond)]
        for seed in sorted(set(native.seed) & set(dt.seed)):
            n_s, d_s = native[native.seed == seed], dt[dt.seed == seed]
            t_native = steps_to_reach(n_s, 1.1 * _last(n_s))
            t_dt = steps_to_reach(d_s, 1.1 * _last(d_s)) / 6
            ratios.append(100 * (1 - t_dt / max(t_native, 1)))
    rows.append(_row("agents trained on the digital twins converge faster",
                     "fewer env steps per training condition for SAC_DT than SAC_AiSF_i to get "
                     "within 10% of its final latency on Ti, % (seeds x T1-T3)", ratios))

    # 3a. SAC_DT ends slightly worse than condition-specific training.
    gaps = [v for cond in TEST_NAMES
            for v in _paired_pct(_final(finals, "sac_dt", cond),
                                 _final(finals, _native(cond), cond))]
    rows.append(_row("SAC_DT ends slightly worse than training on the condition itself",
                     "final latency of SAC_DT over SAC_AiSF_i on Ti, % above", gaps))

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
        most_stable = min(inst, key=lambda k: np.nan_to_num(inst[k], nan=np.inf))
        row = _row("SAC_DT is less stable; PEARL converges most stably",
                   "tail coefficient of variation of SAC_DT minus PEARL, points "
                   f"(most stable method overall: {most_stable})", per_seed)
        if row["verdict"] == "supported" and most_stable != "pearl":
            row["verdict"] = "partly"
        rows.append(row)

    # 4a. PEARL adapts to unseen conditions before retraining (beats SAC_DT, no gradient step).
    gains = [-v for cond in TEST_NAMES
             for v in _paired_pct(_final(finals, "pearl", cond), _final(finals, "sac_dt", cond))]
    rows.append(_row("PEARL adapts to unseen conditions before any retraining",
                     "final latency of adapted PEARL below SAC_DT on T1-T3, %", gains))
    return pd.DataFrame(rows)
