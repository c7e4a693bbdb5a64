"""Confidence intervals over seeds and the paper's claims, on hand-built results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib.analysis import seed_bands
from ecmeta_lib.claims import (
    CLAIMS,
    check_claims,
    claim_tests,
    save_claims,
    steps_to_reach,
    tail_instability,
)
from ecmeta_lib.conditions import TEST_NAMES
from ecmeta_lib.stats import bootstrap_ci, mean_ci, paired_test


def test_mean_ci_against_hand_values() -> None:
    # mean 2, sample sd 1, n = 3: half-width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0
    assert hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert m - lo == pytest.approx(hi - m)
    assert np.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0
    assert np.isnan(mean_ci([])[0])
    assert mean_ci([1.0, np.nan, 3.0])[0] == 2.0  # non-finite values are dropped


def test_paired_test_and_slot_bootstrap() -> None:
    t = paired_test([1.0, 2.0, 3.0], alternative="greater")
    assert t["n"] == 3 and t["mean"] == 2.0 and t["ci_low"] == mean_ci([1, 2, 3])[1]
    assert 0 < t["p_value"] < 0.05
    assert paired_test([1.0, 2.0, 3.0], alternative="less")["p_value"] > 0.95
    assert np.isnan(paired_test([1.0])["ci_low"])
    x = np.random.default_rng(0).normal(10.0, 1.0, 400)
    lo, hi = bootstrap_ci(x, seed=1)
    assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.25)
    assert bootstrap_ci(x, seed=1) == (lo, hi)  # seeded: a rerun gives the same bounds
    assert bootstrap_ci([2.0]) == (2.0, 2.0)


def _curve(method: str, cond: str, seed: int, latencies: list[float], step: int) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "seed": seed, "condition": cond,
                         "env_steps": step * np.arange(1, len(latencies) + 1),
                         "iteration": np.arange(1, len(latencies) + 1),
                         "mean_latency_s": latencies})


def _results(sign: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three seeds built so that every claim holds (sign = +1) or fails (sign = -1): SAC_AiSF_i
    is 1.0 on Ti and 1 + 0.2 sign elsewhere; SAC_DT 1 + 0.05 sign and wobbly; PEARL
    (1 - 0.1 sign) x SAC_DT's level and steady, adapting from the prior with 20 transitions; the
    DT agents reach their level in fewer iterations; the oracle is 0.8."""
    curves, finals, adapt = [], [], []
    rng = np.random.default_rng(0)
    noise = lambda: 1 + 0.005 * rng.standard_normal()  # noqa: E731
    for seed in range(3):
        for cond in TEST_NAMES:
            for j in range(1, 4):
                own = (1.0 if f"T{j}" == cond else 1.0 + 0.2 * sign) * noise()
                wob = 1.01
                curves.append(_curve(f"sac_aisf_{j}", cond, seed,
                                     [2.0, 1.8, 1.6, own * wob, own / wob, own], 20))
                finals.append({"method": f"sac_aisf_{j}", "seed": seed, "condition": cond,
                               "mean_latency_s": own, "oracle_latency_s": 0.8 * sign ** 2
                               if sign > 0 else 1.5})
            dt = (1.0 + 0.05 * sign) * noise()
            wob = 1.05
            curves.append(_curve("sac_dt", cond, seed,
                                 [2.0, dt, dt, dt * wob, dt / wob, dt] if sign > 0
                                 else [2.0, 1.9, 1.8, dt, dt, dt], 120))
            finals.append({"method": "sac_dt", "seed": seed, "condition": cond,
                           "mean_latency_s": dt, "oracle_latency_s": 0.8})
            p = dt * (1 - 0.1 * sign) * noise()
            curves.append(_curve("pearl", cond, seed, [2.0, p, p, p, p, p] if sign > 0
                                 else [2.0, 1.9, 1.8, p * 1.2, p / 1.2, p], 120))
            finals.append({"method": "pearl", "seed": seed, "condition": cond,
                           "mean_latency_s": p, "oracle_latency_s": 0.8})
            for n in (0, 5, 20):
                lat = p * (1 + 0.1 * sign) if n == 0 else p
                adapt.append({"condition": cond, "n_context": n, "seed": seed,
                              "mean_latency_s": lat * noise()})
    return pd.concat(curves, ignore_index=True), pd.DataFrame(finals), pd.DataFrame(adapt)


def test_claims_supported_on_results_built_to_support_them() -> None:
    curves, finals, adapt = _results(+1)
    tests = claim_tests(curves, finals, adapt, n_context=20)
    out = check_claims(curves, finals, adapt, n_context=20).set_index("claim")
    supported = {CLAIMS[k] for k in ("mismatch", "faster_grad", "dt_worse", "dt_unstable",
                                     "adapts", "outperforms", "suboptimal")}
    assert (out.loc[list(supported), "verdict"] == "supported").all(), out
    # on env steps the DT agents spend six conditions' slots per iteration: not faster there
    assert out.loc[CLAIMS["faster_env"], "verdict"] == "not supported"
    mism = tests[tests.claim == CLAIMS["mismatch"]]
    assert len(mism) == 6 and (mism.n == 3).all()  # one test per (i, k), n = seeds, not pooled
    assert mism["mean"].mean() == pytest.approx(20.0, abs=1.5)
    adapts = tests[tests.claim == CLAIMS["adapts"]]
    assert adapts.comparison.str.contains("PEARL\\(20\\) vs PEARL\\(0\\)").all()
    assert adapts["mean"].mean() == pytest.approx(100 * (1 - 1 / 1.1), abs=1.0)


def test_claims_not_supported_when_results_contradict_them() -> None:
    curves, finals, adapt = _results(-1)
    out = check_claims(curves, finals, adapt, n_context=20).set_index("claim")
    for key in ("mismatch", "dt_worse", "adapts", "outperforms", "suboptimal", "stable"):
        assert out.loc[CLAIMS[key], "verdict"] == "not supported", key


def test_claims_are_saved(tmp_path) -> None:
    curves, finals, adapt = _results(+1)
    save_claims(claim_tests(curves, finals, adapt, n_context=20), tmp_path)
    csv = pd.read_csv(tmp_path / "claims.csv")
    assert {"claim", "comparison", "n", "mean", "ci_low", "ci_high", "p_value",
            "verdict"} <= set(csv.columns)
    md = (tmp_path / "claims.md").read_text()
    assert "**supported**: every test" in md and md.count(CLAIMS["adapts"]) == 4


def test_curve_statistics() -> None:
    c = _curve("x", "T1", 0, [3.0, 2.0, 1.0, 1.0], 10)
    assert steps_to_reach(c, 2.0) == 20.0 and np.isnan(steps_to_reach(c, 0.5))
    assert steps_to_reach(c, 2.0, x="iteration") == 2.0
    wobbly = _curve("x", "T1", 0, [1.0, 1.0, 2.0, 0.0], 10)
    # sd of the last three [1, 2, 0] is 1, their mean 1: 100 %
    assert tail_instability(wobbly).loc[0] == pytest.approx(100.0)
    bands = seed_bands(pd.concat([c, c.assign(seed=1, mean_latency_s=c.mean_latency_s + 2)]))
    assert bands["mean"].tolist() == [4.0, 3.0, 2.0, 2.0]
    assert (bands.n_seeds == 2).all()


def test_partly_needs_a_significant_test_and_slightly_has_a_ceiling() -> None:
    from ecmeta_lib.claims import SLIGHTLY_PCT, _test, verdict

    right_sign_only = pd.DataFrame([_test("c", "a", "s", [0.1, -0.05, 0.2]),
                                    _test("c", "b", "s", [-1.0, -1.1, -0.9])])
    assert right_sign_only.sign_ok.any() and not right_sign_only.significant.any()
    assert verdict(right_sign_only) == "not supported"  # a right sign alone is not "partly"
    one = pd.DataFrame([_test("c", "a", "s", [1.0, 1.1, 0.9]),
                        _test("c", "b", "s", [-1.0, -1.1, -0.9])])
    assert verdict(one) == "partly"
    # SAC_DT 30 % worse than the native SAC is not "slightly" worse
    curves, finals, adapt = _results(+1)
    finals.loc[finals.method == "sac_dt", "mean_latency_s"] *= 1.3 / 1.05
    out = check_claims(curves, finals, adapt, n_context=20).set_index("claim")
    assert 30 > SLIGHTLY_PCT and out.loc[CLAIMS["dt_worse"], "verdict"] == "not supported"
