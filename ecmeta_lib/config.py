"""Configuration dataclasses of the simulated edge-cloud system.

Every field carries its unit. Values marked "(ours)" are choices the paper does not make
(docs/MODEL.md lists them); the rest come from the paper's Sec. V and Table I. Configs are
validated on construction, so an out-of-domain value fails loudly where it is written, not
deep in a slot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Range = tuple[float, float]

KB_BITS = 8192  # 1 KB = 1024 byte = 8192 bit
MB_PER_GB = 1024


def _check_range(name: str, value: Range, *, low: float | None = None) -> None:
    lo, hi = value
    if not (lo <= hi):
        raise ValueError(f"{name}: lower bound {lo} exceeds upper bound {hi}")
    if low is not None and lo < low:
        raise ValueError(f"{name}: lower bound {lo} is below the allowed minimum {low}")


def _check_positive_seq(name: str, values: tuple[float, ...], n: int) -> None:
    if len(values) != n:
        raise ValueError(f"{name}: expected {n} values (one per edge server), got {len(values)}")
    if any(v <= 0 for v in values):
        raise ValueError(f"{name}: every value must be positive, got {values}")


@dataclass(frozen=True)
class SystemConfig:
    """Sizes and distributions of the static system and of the per-slot user state
    (docs/MODEL.md §2, §4)."""

    n_users: int = 80
    """|U|, number of edge devices (users)."""
    n_servers: int = 4
    """|H|, number of edge servers, each with its own access point."""
    n_models: int = 3
    """|F|, AI models per AI service function, lightest (0) to most complex (|F|-1). (ours)"""
    n_methods: int = 3
    """|M|, data pre-processing methods, most compressed (0) to raw (|M|-1). (ours)"""
    es_gflops: tuple[float, ...] = (60.0, 80.0, 100.0, 120.0)
    """P^f_h, edge-server compute, GFLOP/s."""
    es_memory_gb: tuple[float, ...] = (24.0, 24.0, 32.0, 32.0)
    """R_h, edge-server memory, GB (1 GB = 1024 MB)."""
    es_cores: tuple[int, ...] = (10, 24, 16, 32)
    """P^n_h, cores of each edge server = most AI service functions it can host."""
    cloud_gflops: float = 400.0
    """P_c, cloud compute per AI service function, GFLOP/s."""
    ds_keep_range: Range = (0.5, 1.0)
    """alpha_{u,m}: kept data fraction of the compressing methods, drawn U[lo, hi] and sorted."""
    local_gflops_range: Range = (20.0, 60.0)
    """P^f_u, device compute, GFLOP/s. (ours)"""
    ap_rate_mbps_range: Range = (80.0, 200.0)
    """B_{h,h'}, AP-to-AP rate, Mbit/s (symmetric, infinite on the diagonal)."""
    ap_delay_ms_range: Range = (10.0, 20.0)
    """delta_{h,h'}, AP-to-AP delay, ms (symmetric, zero on the diagonal)."""
    cloud_rate_mbps_range: Range = (50.0, 100.0)
    """B_{h,c}, AP-to-cloud backhaul rate, Mbit/s. (ours)"""
    cloud_delay_ms_range: Range = (30.0, 50.0)
    """delta_{h,c}, AP-to-cloud delay, ms. (ours)"""
    tx_power_dbm: float = 20.0
    """p_u, device transmit power, dBm."""
    bandwidth_mhz_range: Range = (16.0, 56.0)
    """B_u, wireless bandwidth per user, MHz (Table I: [2, 7] x 8 MHz)."""
    distance_m_range: Range = (30.0, 100.0)
    """Upsilon_u, 2-D distance from the user to its access point, m."""
    noise_dbm_range: Range = (-120.0, -80.0)
    """N_u, noise power, dBm."""
    task_kb_range: Range = (1000.0, 1500.0)
    """V^T_u, task (input) size before pre-processing, KB (1 KB = 8192 bit)."""
    result_kb_range: Range = (10.0, 20.0)
    """V^R_u, result size, KB."""
    accuracy_req_mean: float = 70.0
    """Mean of the accuracy requirement tau_u ~ N(mean, std^2), %."""
    accuracy_req_std: float = 5.0
    """Standard deviation of tau_u, percentage points."""

    def __post_init__(self) -> None:
        for name in ("n_users", "n_servers", "n_models", "n_methods"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_methods < 1 or self.n_models < 1:
            raise ValueError("n_methods and n_models must be at least 1")
        _check_positive_seq("es_gflops", self.es_gflops, self.n_servers)
        _check_positive_seq("es_memory_gb", self.es_memory_gb, self.n_servers)
        _check_positive_seq("es_cores", self.es_cores, self.n_servers)
        if any(int(c) != c for c in self.es_cores):
            raise ValueError(f"es_cores must be integers, got {self.es_cores}")
        if self.cloud_gflops <= 0:
            raise ValueError(f"cloud_gflops must be positive, got {self.cloud_gflops}")
        _check_range("ds_keep_range", self.ds_keep_range, low=1e-6)
        if self.ds_keep_range[1] > 1.0:
            raise ValueError(
                f"ds_keep_range: a kept fraction cannot exceed 1, got {self.ds_keep_range}")
        for name in ("local_gflops_range", "ap_rate_mbps_range", "cloud_rate_mbps_range",
                     "bandwidth_mhz_range", "distance_m_range", "task_kb_range",
                     "result_kb_range"):
            _check_range(name, getattr(self, name), low=1e-9)
        for name in ("ap_delay_ms_range", "cloud_delay_ms_range"):
            _check_range(name, getattr(self, name), low=0.0)
        _check_range("noise_dbm_range", self.noise_dbm_range)
        if self.accuracy_req_std < 0:
            raise ValueError(f"accuracy_req_std must be >= 0, got {self.accuracy_req_std}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConditionConfig:
    """How AI service function conditions (one per digital twin) are drawn and upgraded (§2.2)."""

    flop_per_bit_range: Range = (300.0, 3000.0)
    """rho_u^j, compute intensity, FLOP per bit of (pre-processed) input; |F| draws, sorted."""
    memory_mb_range: Range = (256.0, 2048.0)
    """R_u^j, memory of an AI model, MB; |F| draws, sorted, rounded to integers."""
    peak_accuracy_range: Range = (70.0, 98.0)
    """a_u^j, accuracy at full data quality, %; |F| draws, sorted. (ours)"""
    quality_exponent_range: Range = (0.1, 0.4)
    """gamma_u in A = a * q^gamma, sensitivity of accuracy to data quality. (ours)"""
    upgrade_prob: float = 0.8
    """Probability that one AI service function is upgraded in an upgrade event. (ours)"""
    upgrade_flop_factor: Range = (0.6, 0.9)
    """Factor applied to all rho_u^j of an upgraded function. (ours)"""
    upgrade_memory_factor: Range = (0.6, 0.9)
    """Factor applied to all R_u^j of an upgraded function. (ours)"""
    upgrade_min_memory_mb: int = 64
    """Floor of an upgraded model's memory, MB. (ours)"""
    upgrade_accuracy_gain: Range = (2.0, 6.0)
    """Points added to every a_u^j of an upgraded function, %. (ours)"""
    max_accuracy: float = 99.0
    """Cap of an upgraded peak accuracy, %. (ours)"""
    source: str = "uniform"
    """Where conditions come from: "uniform" (the draws above, the paper's ranges) or "catalogue"
    (published ImageNet models and their real upgrades, `ecmeta_lib.catalogue`; there only
    `quality_exponent_range` and `upgrade_prob` apply). At its default the field is left out of
    every cache key and config.json (`ecmeta_lib.cache.KEY_SILENT_DEFAULTS`), so those written
    before the field existed stay valid. (ours)"""

    def __post_init__(self) -> None:
        _check_range("flop_per_bit_range", self.flop_per_bit_range, low=1e-9)
        _check_range("memory_mb_range", self.memory_mb_range, low=1.0)
        _check_range("peak_accuracy_range", self.peak_accuracy_range, low=0.0)
        if self.peak_accuracy_range[1] > 100:
            raise ValueError("peak_accuracy_range cannot exceed 100 %")
        _check_range("quality_exponent_range", self.quality_exponent_range, low=0.0)
        if not 0.0 <= self.upgrade_prob <= 1.0:
            raise ValueError(f"upgrade_prob must be in [0, 1], got {self.upgrade_prob}")
        _check_range("upgrade_flop_factor", self.upgrade_flop_factor, low=1e-6)
        _check_range("upgrade_memory_factor", self.upgrade_memory_factor, low=1e-6)
        _check_range("upgrade_accuracy_gain", self.upgrade_accuracy_gain, low=0.0)
        if self.upgrade_min_memory_mb < 1:
            raise ValueError("upgrade_min_memory_mb must be >= 1")
        if not 0 < self.max_accuracy <= 100:
            raise ValueError(f"max_accuracy must be in (0, 100], got {self.max_accuracy}")
        if self.source not in CONDITION_SOURCES:
            raise ValueError(f"source must be one of {', '.join(map(repr, CONDITION_SOURCES))}, "
                             f"got {self.source!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONDITION_SOURCES: tuple[str, ...] = ("uniform", "catalogue")
"""The values of `ConditionConfig.source`."""
DEFAULT_CONDITION_SOURCE = "uniform"


@dataclass(frozen=True)
class EnvConfig:
    """The environment around the slot model."""

    system: SystemConfig = field(default_factory=SystemConfig)
    """The static system and user-state distributions."""
    conditions: ConditionConfig = field(default_factory=ConditionConfig)
    """How AI service function conditions are drawn and upgraded."""
    episode_slots: int = 20
    """Slots per episode; the episode is truncated (not terminated) after them. (ours)"""

    def __post_init__(self) -> None:
        if not isinstance(self.episode_slots, int) or self.episode_slots < 1:
            raise ValueError(
                f"episode_slots must be a positive integer, got {self.episode_slots!r}")
