"""Small statistics shared by the runner, plots and claim checks.

Two kinds of interval, never mixed:

* over seeds (`mean_ci`, `paired_test`): a learned method is a random variable of its training
  seed, so its 95 % interval is Student-t over the n seeds of one condition (never seeds x
  conditions pooled: those values share a seed and are not independent draws);
* over slots (`slot_bootstrap_ci`): a deterministic policy (heuristic, yardstick, oracle) has no
  seed; its only randomness is which slots were drawn, so its interval is a bootstrap of the mean
  over the evaluated slots.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float] | np.ndarray,
            confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean (over seeds); NaN bounds for n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return m, m - half, m + half


CI_SEEDS = "t over seeds"
"""Label of a Student-t interval over training seeds (learned methods)."""
CI_SLOTS = "slot bootstrap"
"""Label of a bootstrap interval over evaluated slots (one deterministic policy)."""


def slot_bootstrap_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
                      seed: int = 0, n_resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over slots (`scipy.stats.bootstrap`, seeded so a
    rerun gives the same bounds). One value gives a zero-width interval."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_test(values: Sequence[float] | np.ndarray, alternative: str = "greater",
                confidence: float = 0.95) -> dict[str, float]:
    """A paired test on per-seed differences (already paired: same seed index, same slots).

    Returns n, mean, the two-sided Student-t CI of the mean (`mean_ci`) and the one-sided p-value
    of a t test against zero in the claimed direction (`alternative`: "greater" or "less"; NaN
    for n < 2)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    m, lo, hi = mean_ci(x, confidence)
    p = float("nan")
    if x.size >= 2 and np.ptp(x) > 0:
        with warnings.catch_warnings():  # nearly equal differences: scipy warns, p is still fine
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_1samp(x, 0.0, alternative=alternative).pvalue)
    return {"n": int(x.size), "mean": m, "ci_low": lo, "ci_high": hi, "p_value": p}
