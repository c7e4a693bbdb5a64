"""The paper's qualitative claims of Sec. V, each checked as stated paired tests.

Every claim becomes one or more *tests*. A test compares two quantities that share everything but
the thing the claim is about - the same slots (common random numbers) and the same seed index -
and looks at their per-seed difference: n = seeds, 95 % Student-t interval of the mean difference,
one-sided t-test p-value in the claimed direction. Seeds are never pooled with conditions: a
claim about T1-T3 gets one test per condition.

Verdict rule (ours, the same for every claim), stated once in `VERDICT_RULE`:

* **supported** - every test of the claim is significant in the claimed direction: its mean
  difference has the claimed sign and its 95 % Student-t interval excludes zero (equivalently,
  at alpha = 0.05 two-sided);
* **partly** - at least one test, not all, is significant in the claimed direction;
* **not supported** - no test is.

"Slightly" is a number: `SLIGHTLY_PCT`. A claim that one method is *slightly* worse is tested,
per condition, on the per-seed margin min(d, SLIGHTLY_PCT - d) of its difference d (% above):
positive when it is worse, by less than the threshold. A test with one seed has no interval: it
is never significant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .conditions import TEST_NAMES
from .stats import paired_test

AISF = {f"sac_aisf_{i}": name for i, name in enumerate(TEST_NAMES, start=1)}
SLIGHTLY_PCT = 10.0
"""What "slightly" means in a claim: a difference below this many % of the reference."""
VERDICT_RULE = (
    "Each claim is one or more paired tests over seeds (one per condition or comparison; never "
    "seeds x conditions pooled), alpha = 0.05: a test is significant when its mean difference "
    "has the claimed sign and its 95 % Student-t interval over seeds excludes zero. "
    "**supported**: every test is significant; **partly**: at least one, not all; **not "
    f"supported**: none. \"Slightly\" means by less than {SLIGHTLY_PCT:g} %, tested as such.")
TAIL_K = 3
"""Learning-curve points whose spread measures (in)stability."""
CONVERGED_WITHIN = 0.10
"""A run has converged once its curve is within this fraction of its own final latency."""


def _native(cond: str) -> str:
    """The SAC baseline trained on test condition `cond` alone."""
    return f"sac_aisf_{TEST_NAMES.index(cond) + 1}"


def _final(finals: pd.DataFrame, method: str, cond: str, col: str = "mean_latency_s"
           ) -> pd.Series:
    g = finals[(finals.method == method) & (finals.condition == cond)]
    return g.groupby("seed")[col].mean()


def _paired_pct(a: pd.Series, b: pd.Series) -> np.ndarray:
    """100 (a / b - 1) per seed both series have: how much a is above b, in %."""
    common = a.index.intersection(b.index)
    return (100 * (a[common] / b[common] - 1)).to_numpy()


def _paired_diff(a: pd.Series, b: pd.Series) -> np.ndarray:
    common = a.index.intersection(b.index)
    return (a[common] - b[common]).to_numpy()


def steps_to_reach(curves: pd.DataFrame, target: float, x: str = "env_steps") -> float:
    """First `x` (env_steps or iteration) at which a learning curve (seed mean if several) is at
    or below `target`."""
    mean = curves.groupby(x).mean_latency_s.mean().sort_index()
    hit = mean[mean <= target]
    return float(hit.index[0]) if len(hit) else float("nan")


def _last(curve: pd.DataFrame) -> float:
    """Latency at the last evaluation of a learning curve (seed mean)."""
    return float(curve.groupby("env_steps").mean_latency_s.mean().sort_index().iloc[-1])


def tail_instability(curves: pd.DataFrame, k: int = TAIL_K) -> pd.Series:
    """Per seed: the spread (sample sd) of the last `k` evaluations of the learning curve,
    relative to their mean, in % (lower = steadier at the end of training)."""
    out = {}
    for seed, g in curves.groupby("seed"):
        tail = g.sort_values("env_steps").mean_latency_s.to_numpy()[-k:]
        out[seed] = float(100 * tail.std(ddof=1) / tail.mean()) if tail.size > 1 else np.nan
    return pd.Series(out, dtype=float)


def convergence_time(curves: pd.DataFrame, x: str) -> pd.Series:
    """Per seed: the first `x` at which the curve is within `CONVERGED_WITHIN` of its own last
    value."""
    out = {}
    for seed, g in curves.groupby("seed"):
        out[seed] = steps_to_reach(g, (1 + CONVERGED_WITHIN) * _last(g), x)
    return pd.Series(out, dtype=float)


def _test(claim: str, comparison: str, statistic: str, values: np.ndarray | list[float],
          claimed: str = "greater") -> dict:
    """One paired test; `claimed` is the direction the claim predicts for `values`."""
    t = paired_test(values, alternative=claimed)
    sign_ok = t["mean"] > 0 if claimed == "greater" else t["mean"] < 0
    excl = (t["ci_low"] > 0) if claimed == "greater" else (t["ci_high"] < 0)
    return {"claim": claim, "comparison": comparison, "statistic": statistic,
            "claimed": "> 0" if claimed == "greater" else "< 0", **t,
            "sign_ok": bool(np.isfinite(t["mean"]) and sign_ok),
            "significant": bool(np.isfinite(t["ci_low"]) and sign_ok and excl)}


def verdict(tests: pd.DataFrame) -> str:
    """`VERDICT_RULE` applied to one claim's tests."""
    if tests.empty or not np.isfinite(tests["mean"]).any():
        return "not measurable"
    if tests.significant.all():
        return "supported"
    return "partly" if tests.significant.any() else "not supported"


CLAIMS = {
    "mismatch": "SAC trained on one condition suffers a policy mismatch on the others",
    "faster_env": "agents trained on the digital twins converge faster (env steps)",
    "faster_grad": "agents trained on the digital twins converge faster (gradient steps)",
    "dt_worse": "SAC_DT ends slightly worse than SAC trained on the condition itself",
    "dt_unstable": "SAC_DT converges less stably than SAC trained on the condition itself",
    "adapts": "PEARL adapts to unseen conditions before any retraining",
    "stable": "PEARL converges most stably",
    "outperforms": "PEARL outperforms traditional DRL (SAC_DT, SAC_T_M, every SAC_AiSF)",
    "suboptimal": "SAC trained on a single condition converges only to a suboptimum",
}


def claim_tests(curves: pd.DataFrame, finals: pd.DataFrame,
                adapt: pd.DataFrame | None = None, n_context: int | None = None) -> pd.DataFrame:
    """Every paired test of every claim (one row each), with the claim's verdict."""
    rows: list[dict] = []
    conds = [c for c in TEST_NAMES if c in set(finals.condition)]
    methods = set(finals.method)

    # Policy mismatch: on Tk, SAC_AiSF_i (i != k) against SAC_AiSF_k, paired by seed on the
    # same slots; % above.
    for cond in conds:
        for method, own in AISF.items():
            if own == cond or method not in methods or _native(cond) not in methods:
                continue
            rows.append(_test(CLAIMS["mismatch"], f"{cond}: {method} vs {_native(cond)}",
                              "final latency, % above the native SAC",
                              _paired_pct(_final(finals, method, cond),
                                          _final(finals, _native(cond), cond))))

    # Faster convergence of the DT agents (PEARL, SAC_DT) against SAC_AiSF_k on Tk: the steps
    # each needs to come within 10 % of its own final latency. Every method takes the same
    # T_train gradient steps per iteration, so "gradient steps" is iterations; a DT agent
    # collects six conditions' slots per iteration, so on env steps it spends 6x more.
    for x, key, unit in (("env_steps", "faster_env", "env steps"),
                         ("iteration", "faster_grad", "gradient steps (iterations)")):
        if x not in curves.columns:
            continue
        for cond in conds:
            native = convergence_time(curves[(curves.method == _native(cond))
                                             & (curves.condition == cond)], x)
            for dt in ("pearl", "sac_dt"):
                mine = convergence_time(curves[(curves.method == dt)
                                               & (curves.condition == cond)], x)
                rows.append(_test(CLAIMS[key], f"{cond}: {dt} vs {_native(cond)}",
                                  f"{unit} to within 10 % of its final latency, % fewer",
                                  -_paired_pct(mine, native)))

    # SAC_DT slightly worse than condition-specific training, and less stable.
    inst: dict[tuple[str, str], pd.Series] = {
        (m, c): tail_instability(curves[(curves.method == m) & (curves.condition == c)])
        for m in set(curves.method) for c in conds}
    for cond in conds:
        above = _paired_pct(_final(finals, "sac_dt", cond), _final(finals, _native(cond), cond))
        # worse, and by less than the threshold: the margin inside (0, SLIGHTLY_PCT) is > 0
        rows.append(_test(CLAIMS["dt_worse"], f"{cond}: sac_dt vs {_native(cond)}",
                          f"margin inside (0, {SLIGHTLY_PCT:g}) of the final latency's % above: "
                          f"min(% above, {SLIGHTLY_PCT:g} - % above)",
                          np.minimum(above, SLIGHTLY_PCT - above)))
        if ("sac_dt", cond) in inst and (_native(cond), cond) in inst:
            rows.append(_test(CLAIMS["dt_unstable"], f"{cond}: sac_dt vs {_native(cond)}",
                              f"spread of the last {TAIL_K} curve points (% of their mean), "
                              "difference in points",
                              _paired_diff(inst["sac_dt", cond], inst[_native(cond), cond])))

    # PEARL adapts: PEARL with n context transitions against PEARL with none (the prior), same
    # agent, same slots; % below.
    if adapt is not None and not adapt.empty:
        have = sorted(int(v) for v in adapt.n_context.unique() if v > 0)
        # the context final.csv used when recorded, else the largest recorded one below it
        n = max([v for v in have if n_context is None or v <= n_context] or have[-1:] or [0])
        for cond in conds:
            g = adapt[adapt.condition == cond]
            with_n = g[g.n_context == n].groupby("seed").mean_latency_s.mean()
            prior = g[g.n_context == 0].groupby("seed").mean_latency_s.mean()
            rows.append(_test(CLAIMS["adapts"], f"{cond}: PEARL({n}) vs PEARL(0)",
                              f"latency with {n} context transitions, % below the prior's",
                              -_paired_pct(with_n, prior)))

    # PEARL most stable: its tail spread against every other method's, per condition.
    for cond in conds:
        for other in sorted(m for m in set(curves.method) if m != "pearl"):
            if ("pearl", cond) not in inst:
                continue
            rows.append(_test(CLAIMS["stable"], f"{cond}: pearl vs {other}",
                              f"spread of the last {TAIL_K} curve points, points less",
                              -_paired_diff(inst["pearl", cond], inst[other, cond])))

    # PEARL outperforms traditional DRL: final latency against SAC_DT, SAC_T_M and every
    # SAC_AiSF_i on each Tk, its own Tk included (where it was trained: PEARL loses there);
    # % below.
    for cond in conds:
        others = ["sac_dt", "sac_t_m"] + list(AISF)
        for other in [m for m in others if m in methods]:
            rows.append(_test(CLAIMS["outperforms"], f"{cond}: pearl vs {other}",
                              "final latency, % below",
                              -_paired_pct(_final(finals, "pearl", cond),
                                           _final(finals, other, cond))))

    # Single-condition SAC converges to a suboptimum: SAC_AiSF_k on its own Tk against the
    # per-slot oracle on the same slots; % above.
    for cond in conds:
        rows.append(_test(CLAIMS["suboptimal"], f"{cond}: {_native(cond)} vs oracle",
                          "final latency, % above the per-slot optimum",
                          _paired_pct(_final(finals, _native(cond), cond),
                                      _final(finals, _native(cond), cond, "oracle_latency_s"))))

    tests = pd.DataFrame(rows)
    if tests.empty:
        return tests
    tests["verdict"] = tests.claim.map({c: verdict(g) for c, g in tests.groupby("claim")})
    return tests


def summarize(tests: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: its tests, how many have the claimed sign / are significant, verdict."""
    order = {c: i for i, c in enumerate(CLAIMS.values())}
    out = (tests.groupby("claim", sort=False)
           .agg(tests=("comparison", "size"), right_sign=("sign_ok", "sum"),
                significant=("significant", "sum"), mean_effect=("mean", "mean"),
                verdict=("verdict", "first"))
           .reset_index())
    return out.sort_values("claim", key=lambda s: s.map(order)).reset_index(drop=True)


def check_claims(curves: pd.DataFrame, finals: pd.DataFrame, adapt: pd.DataFrame | None = None,
                 n_context: int | None = None) -> pd.DataFrame:
    """One row per claim (`summarize` of `claim_tests`)."""
    return summarize(claim_tests(curves, finals, adapt, n_context))


def claims_markdown(tests: pd.DataFrame) -> str:
    """The verdict rule, one line per claim, then every test with its numbers."""
    lines = ["# The paper's claims, as paired tests", "", VERDICT_RULE, "",
             "| claim | verdict | tests with the claimed sign | significant |",
             "|---|---|---|---|"]
    for r in summarize(tests).itertuples():
        lines.append(f"| {r.claim} | **{r.verdict}** | {r.right_sign} / {r.tests} | "
                     f"{r.significant} / {r.tests} |")
    lines += ["", "## Every test", "",
              "Differences per seed (n = seeds), mean and 95 % Student-t interval; p: one-sided "
              "t-test in the claimed direction.", "",
              "| claim | comparison | statistic | n | mean [95% CI] | p |",
              "|---|---|---|---|---|---|"]
    for r in tests.itertuples():
        ci = ("" if not np.isfinite(r.ci_low)
              else f" [{r.ci_low:+.1f}, {r.ci_high:+.1f}]")
        p = "" if not np.isfinite(r.p_value) else f"{r.p_value:.3f}"
        lines.append(f"| {r.claim} | {r.comparison} | {r.statistic} | {r.n} | "
                     f"{r.mean:+.1f}{ci} | {p} |")
    return "\n".join(lines) + "\n"


def save_claims(tests: pd.DataFrame, out_dir: Path | str, stem: str = "claims") -> None:
    """``<stem>.csv`` (every test) and ``<stem>.md`` (`claims_markdown`) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tests.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
    (out / f"{stem}.md").write_text(claims_markdown(tests))
