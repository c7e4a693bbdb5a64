"""Radio and accuracy physics of the edge-cloud system (paper eqs. 1 and 6).

Path loss: 3GPP TR 38.900 rural macro (RMa), line of sight, PL1 (valid below the breakpoint
distance, which the 30-100 m user distances always are). The constants below (carrier frequency,
antenna heights, building height) are ours; the paper only names the model.
"""

from __future__ import annotations

import numpy as np

CARRIER_GHZ = 3.5  # f_c (ours)
BS_HEIGHT_M = 35.0  # h_BS (ours)
UT_HEIGHT_M = 1.5  # h_UT (ours)
BUILDING_HEIGHT_M = 5.0  # average building height h (ours)
SPEED_OF_LIGHT_M_S = 3.0e8


def dbm_to_watt(dbm: np.ndarray | float) -> np.ndarray:
    """Power in dBm to watts: 10^((dBm - 30) / 10)."""
    return np.power(10.0, (np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def breakpoint_distance_m(carrier_ghz: float = CARRIER_GHZ) -> float:
    """RMa breakpoint distance d_BP = 2 pi h_BS h_UT f_c / c, m."""
    return 2.0 * np.pi * BS_HEIGHT_M * UT_HEIGHT_M * carrier_ghz * 1e9 / SPEED_OF_LIGHT_M_S


def rma_los_path_loss_db(distance_2d_m: np.ndarray | float,
                         carrier_ghz: float = CARRIER_GHZ) -> np.ndarray:
    """RMa LOS path loss PL1 in dB at a 2-D distance (m) from the access point.

    PL1 = 20 log10(40 pi d3D f_c / 3) + min(0.03 h^1.72, 10) log10(d3D)
          - min(0.044 h^1.72, 14.77) + 0.002 log10(h) d3D,   f_c in GHz, d3D in m.
    """
    d2 = np.asarray(distance_2d_m, dtype=float)
    if np.any(d2 < 10.0):
        raise ValueError("RMa PL1 is defined from a 2-D distance of 10 m; got a smaller one")
    d3 = np.sqrt(d2**2 + (BS_HEIGHT_M - UT_HEIGHT_M) ** 2)
    if np.any(d3 > breakpoint_distance_m(carrier_ghz)):
        raise ValueError("distance beyond the RMa breakpoint: PL1 does not apply there")
    h = BUILDING_HEIGHT_M
    return (
        20.0 * np.log10(40.0 * np.pi * d3 * carrier_ghz / 3.0)
        + min(0.03 * h**1.72, 10.0) * np.log10(d3)
        - min(0.044 * h**1.72, 14.77)
        + 0.002 * np.log10(h) * d3
    )


def channel_gain(distance_2d_m: np.ndarray | float) -> np.ndarray:
    """Linear channel gain g = 10^(-PL/10)."""
    return np.power(10.0, -rma_los_path_loss_db(distance_2d_m) / 10.0)


def uplink_rate_bps(bandwidth_hz: np.ndarray, distance_2d_m: np.ndarray,
                    noise_dbm: np.ndarray, tx_power_dbm: float) -> np.ndarray:
    """Shannon rate r = B log2(1 + p g / N) in bit/s, powers in watts (eq. 1's denominator)."""
    snr = dbm_to_watt(tx_power_dbm) * channel_gain(distance_2d_m) / dbm_to_watt(noise_dbm)
    return np.asarray(bandwidth_hz, dtype=float) * np.log2(1.0 + snr)


def accuracy_pct(peak_accuracy: np.ndarray, quality: np.ndarray,
                 quality_exponent: np.ndarray) -> np.ndarray:
    """Accuracy A = a * q^gamma (%) of a model with peak accuracy a on data of quality q in (0, 1].

    Concave and increasing in q for 0 < gamma < 1, and equal to the peak at raw quality q = 1,
    as the paper requires of its (unspecified) mapping G. (ours)
    """
    return np.asarray(peak_accuracy) * np.power(np.asarray(quality), np.asarray(quality_exponent))
