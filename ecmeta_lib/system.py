"""The static edge-cloud system (drawn once per system seed) and the per-slot user state.

Fields are numpy arrays in SI units (bit, bit/s, Hz, FLOP/s, s, m) plus dBm, MB and %, with the
exact names of the public contract (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import KB_BITS, MB_PER_GB, SystemConfig


@dataclass(frozen=True)
class System:
    """Static part of the edge-cloud system, shared by every AI service function condition."""

    n_users: int
    n_servers: int
    es_flops: np.ndarray
    """(H,) edge-server compute P^f_h, FLOP/s."""
    es_cores: np.ndarray
    """(H,) cores P^n_h = most AI service functions hosted at once (constraint C2)."""
    es_memory_mb: np.ndarray
    """(H,) memory R_h, MB (constraint C3)."""
    cloud_flops: float
    """Cloud compute per AI service function P_c, FLOP/s."""
    local_flops: np.ndarray
    """(U,) device compute P^f_u, FLOP/s."""
    ds_ratio: np.ndarray
    """(U, M) kept data fraction alpha_{u,m}; ascending in m, the last method keeps raw data (1)."""
    ap_rate: np.ndarray
    """(H, H) AP-to-AP rate B_{h,h'}, bit/s; symmetric, inf on the diagonal."""
    ap_delay: np.ndarray
    """(H, H) AP-to-AP delay delta_{h,h'}, s; symmetric, 0 on the diagonal."""
    cloud_rate: np.ndarray
    """(H,) AP-to-cloud backhaul rate B_{h,c}, bit/s."""
    cloud_delay: np.ndarray
    """(H,) AP-to-cloud delay delta_{h,c}, s."""
    tx_power_dbm: float
    """Device transmit power p_u, dBm."""

    @property
    def n_methods(self) -> int:
        return int(self.ds_ratio.shape[1])


@dataclass(frozen=True)
class UserState:
    """One slot's user state: the observation's raw values (docs/MODEL.md §4)."""

    ap: np.ndarray
    """(U,) access point (= edge server) the user is attached to, 0-based."""
    bandwidth_hz: np.ndarray
    """(U,) wireless bandwidth B_u, Hz."""
    distance_m: np.ndarray
    """(U,) 2-D distance to the access point, m."""
    noise_dbm: np.ndarray
    """(U,) noise power N_u, dBm."""
    task_bits: np.ndarray
    """(U,) task size V^T_u before pre-processing, bit."""
    result_bits: np.ndarray
    """(U,) result size V^R_u, bit."""
    accuracy_req: np.ndarray
    """(U,) accuracy requirement tau_u, %."""


def _symmetric(rng: np.random.Generator, n: int, lo: float, hi: float, diag: float) -> np.ndarray:
    upper = np.triu(rng.uniform(lo, hi, size=(n, n)), k=1)
    out = upper + upper.T
    np.fill_diagonal(out, diag)
    return out


def sample_system(rng: np.random.Generator, cfg: SystemConfig) -> System:
    """Draw the static system: device compute, pre-processing ratios and the AP/cloud links."""
    u, h, m = cfg.n_users, cfg.n_servers, cfg.n_methods
    keep = np.sort(rng.uniform(*cfg.ds_keep_range, size=(u, m - 1)), axis=1)
    ds_ratio = np.concatenate([keep, np.ones((u, 1))], axis=1)  # raw data keeps everything (ours)
    mbps, ms = 1e6, 1e-3
    return System(
        n_users=u,
        n_servers=h,
        es_flops=np.asarray(cfg.es_gflops, dtype=float) * 1e9,
        es_cores=np.asarray(cfg.es_cores, dtype=np.int64),
        es_memory_mb=np.asarray(cfg.es_memory_gb, dtype=float) * MB_PER_GB,
        cloud_flops=float(cfg.cloud_gflops) * 1e9,
        local_flops=rng.uniform(*cfg.local_gflops_range, size=u) * 1e9,
        ds_ratio=ds_ratio,
        ap_rate=_symmetric(rng, h, *cfg.ap_rate_mbps_range, diag=np.inf) * mbps,
        ap_delay=_symmetric(rng, h, *cfg.ap_delay_ms_range, diag=0.0) * ms,
        cloud_rate=rng.uniform(*cfg.cloud_rate_mbps_range, size=h) * mbps,
        cloud_delay=rng.uniform(*cfg.cloud_delay_ms_range, size=h) * ms,
        tx_power_dbm=float(cfg.tx_power_dbm),
    )


def sample_user_state(rng: np.random.Generator, cfg: SystemConfig) -> UserState:
    """Draw one slot's user state, i.i.d. across slots and users."""
    u = cfg.n_users
    return UserState(
        ap=rng.integers(0, cfg.n_servers, size=u),
        bandwidth_hz=rng.uniform(*cfg.bandwidth_mhz_range, size=u) * 1e6,
        distance_m=rng.uniform(*cfg.distance_m_range, size=u),
        noise_dbm=rng.uniform(*cfg.noise_dbm_range, size=u),
        task_bits=rng.uniform(*cfg.task_kb_range, size=u) * KB_BITS,
        result_bits=rng.uniform(*cfg.result_kb_range, size=u) * KB_BITS,
        accuracy_req=np.clip(rng.normal(cfg.accuracy_req_mean, cfg.accuracy_req_std, size=u),
                             0.0, 100.0),
    )
