"""Radio and accuracy physics against hand-computed values (docs/MODEL.md §5, RMa LOS PL1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecmeta_lib.physics import (
    accuracy_pct,
    breakpoint_distance_m,
    channel_gain,
    dbm_to_watt,
    rma_los_path_loss_db,
    uplink_rate_bps,
)


def hand_pl1(d2: float) -> float:
    """PL1 written out with our constants (MODEL.md §5): f_c 3.5 GHz, h_BS 35, h_UT 1.5, h 5 m."""
    d3 = math.sqrt(d2**2 + (35.0 - 1.5) ** 2)
    h = 5.0
    return (20 * math.log10(40 * math.pi * d3 * 3.5 / 3) + min(0.03 * h**1.72, 10) * math.log10(d3)
            - min(0.044 * h**1.72, 14.77) + 0.002 * math.log10(h) * d3)


def test_path_loss_at_100_m_matches_hand_value():
    assert float(rma_los_path_loss_db(100.0)) == pytest.approx(84.20, abs=0.005)
    assert float(rma_los_path_loss_db(100.0)) == pytest.approx(hand_pl1(100.0), rel=1e-12)


@pytest.mark.parametrize("d", [10.0, 30.0, 55.5, 100.0, 1000.0])
def test_path_loss_matches_formula(d):
    assert float(rma_los_path_loss_db(d)) == pytest.approx(hand_pl1(d), rel=1e-12)


def test_breakpoint_distance():
    # d_BP = 2 pi h_BS h_UT f_c / c = 2 pi * 35 * 1.5 * 3.5e9 / 3e8 ~ 3848 m, far above 100 m
    assert breakpoint_distance_m() == pytest.approx(2 * math.pi * 35 * 1.5 * 3.5e9 / 3e8)
    assert breakpoint_distance_m() > 3000


def test_path_loss_rejects_out_of_model_distances():
    with pytest.raises(ValueError, match="10 m"):
        rma_los_path_loss_db(5.0)
    with pytest.raises(ValueError, match="breakpoint"):
        rma_los_path_loss_db(5000.0)


@given(st.floats(10.0, 3000.0), st.floats(0.0, 500.0))
def test_path_loss_increases_with_distance(d, extra):
    assert rma_los_path_loss_db(d + extra + 1e-3) > rma_los_path_loss_db(d)


def test_dbm_to_watt():
    assert float(dbm_to_watt(30.0)) == pytest.approx(1.0)
    assert float(dbm_to_watt(20.0)) == pytest.approx(0.1)
    assert float(dbm_to_watt(-100.0)) == pytest.approx(1e-13)


def test_channel_gain_is_linear_path_loss():
    assert float(channel_gain(100.0)) == pytest.approx(10 ** (-hand_pl1(100.0) / 10), rel=1e-12)


def test_rate_by_hand():
    # B = 20 MHz, 100 m, N = -100 dBm, p = 20 dBm: SNR = 0.1 W * g / 1e-13 W
    snr = 0.1 * 10 ** (-hand_pl1(100.0) / 10) / 1e-13
    expected = 20e6 * math.log2(1 + snr)
    got = float(uplink_rate_bps(np.array([20e6]), np.array([100.0]), np.array([-100.0]), 20.0)[0])
    assert got == pytest.approx(expected, rel=1e-12)
    assert 2.3e8 < got < 2.4e8  # ~238 Mbit/s: SNR ~ 3800, log2 ~ 11.9


def test_rate_grows_with_bandwidth_and_falls_with_noise():
    b = np.array([16e6, 56e6])
    r = uplink_rate_bps(b, np.array([50.0, 50.0]), np.array([-100.0, -100.0]), 20.0)
    assert r[1] / r[0] == pytest.approx(56 / 16)
    quiet, loud = uplink_rate_bps(np.array([20e6] * 2), np.array([50.0] * 2),
                                  np.array([-120.0, -80.0]), 20.0)
    assert quiet > loud > 0


def test_accuracy_by_hand():
    # A = a q^gamma: 90 * 0.5^0.25 = 75.68 %
    assert float(accuracy_pct(90.0, 0.5, 0.25)) == pytest.approx(90 * 0.5**0.25)
    assert float(accuracy_pct(90.0, 0.5, 0.25)) == pytest.approx(75.68, abs=0.01)
    assert float(accuracy_pct(90.0, 1.0, 0.3)) == pytest.approx(90.0)  # raw data: peak accuracy


@given(st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(0.1, 0.4), st.floats(50, 99))
def test_accuracy_monotone_and_concave_in_quality(q1, q2, gamma, peak):
    lo, hi = sorted((q1, q2))
    a_lo, a_hi = accuracy_pct(peak, lo, gamma), accuracy_pct(peak, hi, gamma)
    assert a_lo <= a_hi <= peak
    mid = accuracy_pct(peak, (lo + hi) / 2, gamma)
    assert mid >= (a_lo + a_hi) / 2 - 1e-9  # concavity
