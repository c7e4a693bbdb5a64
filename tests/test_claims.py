"""Confidence intervals over seeds and the paper's claims, on hand-built results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib.claims import check_claims, steps_to_reach, tail_instability
from ecmeta_lib.conditions import TEST_NAMES
from ecmeta_lib.plots import seed_bands
from ecmeta_lib.stats import mean_ci


def test_mean_ci_against_hand_values() -> None:
    # mean 2, sample sd 1, n = 3: half-width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0
    assert hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert m - lo == pytest.approx(hi - m)
    assert np.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0
    assert np.isnan(mean_ci([])[0])
    assert mean_ci([1.0, np.nan, 3.0])[0] == 2.0  # non-finite values are dropped


def _curve(method: str, cond: str, seed: int, latencies: list[float], step: int) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "seed": seed, "condition": cond,
                         "env_steps": step * np.arange(1, len(latencies) + 1),
                         "mean_latency_s": latencies})


def _results(mismatch: float, pearl_gain: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three seeds; SAC_AiSF_i is 1.0 on Ti and 1 + mismatch elsewhere; SAC_DT 1.05 everywhere and
    wobbly; PEARL (1 - pearl_gain) * 1.05 and steady; DT agents reach their level in fewer steps
    per condition."""
    curves, finals = [], []
    rng = np.random.default_rng(0)
    for seed in range(3):
        for cond in TEST_NAMES:
            for j in range(1, 4):
                own = 1.0 if f"T{j}" == cond else 1.0 + mismatch
                own *= 1 + 0.01 * rng.standard_normal()
                curves.append(_curve(f"sac_aisf_{j}", cond, seed,
                                     [2.0, 1.6, 1.3, 1.1, own, own], 20))
                finals.append({"method": f"sac_aisf_{j}", "seed": seed, "condition": cond,
                               "mean_latency_s": own})
            dt = 1.05 * (1 + 0.01 * rng.standard_normal())
            curves.append(_curve("sac_dt", cond, seed, [2.0, dt, dt * 1.1, dt * 0.9, dt, dt],
                                 120))
            finals.append({"method": "sac_dt", "seed": seed, "condition": cond,
                           "mean_latency_s": dt})
            p = dt * (1 - pearl_gain)
            curves.append(_curve("pearl", cond, seed, [2.0, p, p, p, p, p], 120))
            finals.append({"method": "pearl", "seed": seed, "condition": cond,
                           "mean_latency_s": p})
    return pd.concat(curves, ignore_index=True), pd.DataFrame(finals)


def test_claims_supported_on_results_built_to_support_them() -> None:
    curves, finals = _results(mismatch=0.2, pearl_gain=0.05)
    out = check_claims(curves, finals).set_index("claim")
    assert (out.verdict == "supported").all(), out[["mean", "ci_low", "ci_high", "verdict"]]
    mismatch = out.loc["SAC trained on one condition suffers a policy mismatch on the others"]
    assert mismatch["mean"] == pytest.approx(20.0, abs=1.5)
    gain = out.loc["PEARL adapts to unseen conditions before any retraining"]
    assert gain["mean"] == pytest.approx(5.0, abs=1e-6)


def test_claims_not_supported_when_results_contradict_them() -> None:
    curves, finals = _results(mismatch=-0.2, pearl_gain=-0.05)
    out = check_claims(curves, finals).set_index("claim")
    assert out.loc["SAC trained on one condition suffers a policy mismatch on the others",
                   "verdict"] == "not supported"
    assert out.loc["PEARL adapts to unseen conditions before any retraining",
                   "verdict"] == "not supported"


def test_curve_statistics() -> None:
    c = _curve("x", "T1", 0, [3.0, 2.0, 1.0, 1.0], 10)
    assert steps_to_reach(c, 2.0) == 20.0 and np.isnan(steps_to_reach(c, 0.5))
    wobbly = _curve("x", "T1", 0, [1.0, 1.0, 2.0, 0.0], 10)
    assert tail_instability(wobbly).loc[0] == pytest.approx(1.0)  # std 1 / mean 1 of [2, 0]
    bands = seed_bands(pd.concat([c, c.assign(seed=1, mean_latency_s=c.mean_latency_s + 2)]))
    assert bands["mean"].tolist() == [4.0, 3.0, 2.0, 2.0]
    assert (bands.n_seeds == 2).all()
