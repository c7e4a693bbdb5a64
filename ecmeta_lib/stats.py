"""Small statistics shared by the runner, plots and claim checks.

Two kinds of interval, never mixed:

* over seeds (`mean_ci`, `paired_test`): a learned method is a random variable of its training
  seed, so its 95 % interval is Student-t over the n seeds of one condition (never seeds x
  conditions pooled: those values share a seed and are not independent draws);
* over slots (`bootstrap_ci`): a deterministic policy (heuristic, yardstick, oracle) has no
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


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` over slots: resampled with
    replacement `n_boot` times from ``np.random.default_rng(seed)`` (a rerun gives the same
    bounds). The one bootstrap of the package: final.csv's per-run interval
    (`evaluation.evaluate`) and a deterministic policy's in the baselines (`CI_SLOTS`). One value
    gives a zero-width interval; empty or non-finite values raise `ValueError`.

    Ours rather than `scipy.stats.bootstrap`: the same kind of interval (percentile), but this
    exact resampling is what every committed final.csv holds."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_ci: values must be finite")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


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
