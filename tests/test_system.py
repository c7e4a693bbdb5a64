"""The static system and the per-slot user state: shapes, units, ranges (docs/MODEL.md §2, §4)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import small_system_configs
from hypothesis import given
from hypothesis import strategies as st

from ecmeta_lib import SystemConfig
from ecmeta_lib.config import KB_BITS
from ecmeta_lib.system import sample_system, sample_user_state


def test_paper_system_values():
    s = sample_system(np.random.default_rng(0), SystemConfig())
    assert (s.n_users, s.n_servers, s.n_methods) == (80, 4, 3)
    np.testing.assert_allclose(s.es_flops, [60e9, 80e9, 100e9, 120e9])
    np.testing.assert_array_equal(s.es_cores, [10, 24, 16, 32])
    np.testing.assert_allclose(s.es_memory_mb, [24 * 1024, 24 * 1024, 32 * 1024, 32 * 1024])
    assert s.cloud_flops == 400e9
    assert s.tx_power_dbm == 20.0
    assert np.all((s.local_flops >= 20e9) & (s.local_flops <= 60e9))


@given(small_system_configs(), st.integers(0, 2**32 - 1))
def test_system_structure(cfg, seed):
    s = sample_system(np.random.default_rng(seed), cfg)
    u, h, m = cfg.n_users, cfg.n_servers, cfg.n_methods
    assert s.ds_ratio.shape == (u, m)
    np.testing.assert_array_equal(s.ds_ratio[:, -1], 1.0)  # the last method keeps the raw data
    assert np.all(np.diff(s.ds_ratio, axis=1) >= 0)  # most compressed first
    assert np.all((s.ds_ratio >= 0.5) & (s.ds_ratio <= 1.0))
    assert s.ap_rate.shape == s.ap_delay.shape == (h, h)
    assert np.all(np.isinf(np.diag(s.ap_rate))) and np.all(np.diag(s.ap_delay) == 0)
    np.testing.assert_array_equal(s.ap_rate, s.ap_rate.T)
    np.testing.assert_array_equal(s.ap_delay, s.ap_delay.T)
    off = ~np.eye(h, dtype=bool)
    assert np.all((s.ap_rate[off] >= 80e6) & (s.ap_rate[off] <= 200e6))
    assert np.all((s.ap_delay[off] >= 10e-3) & (s.ap_delay[off] <= 20e-3))
    assert np.all((s.cloud_rate >= 50e6) & (s.cloud_rate <= 100e6))
    assert np.all((s.cloud_delay >= 30e-3) & (s.cloud_delay <= 50e-3))


@given(small_system_configs(), st.integers(0, 2**32 - 1))
def test_user_state_ranges_and_units(cfg, seed):
    st_ = sample_user_state(np.random.default_rng(seed), cfg)
    u = cfg.n_users
    for field in ("ap", "bandwidth_hz", "distance_m", "noise_dbm", "task_bits", "result_bits",
                  "accuracy_req"):
        assert getattr(st_, field).shape == (u,)
    assert st_.ap.min() >= 0 and st_.ap.max() < cfg.n_servers
    assert np.all((st_.bandwidth_hz >= 16e6) & (st_.bandwidth_hz <= 56e6))
    assert np.all((st_.distance_m >= 30) & (st_.distance_m <= 100))
    assert np.all((st_.noise_dbm >= -120) & (st_.noise_dbm <= -80))
    assert np.all((st_.task_bits >= 1000 * KB_BITS) & (st_.task_bits <= 1500 * KB_BITS))
    assert np.all((st_.result_bits >= 10 * KB_BITS) & (st_.result_bits <= 20 * KB_BITS))
    assert np.all((st_.accuracy_req >= 0) & (st_.accuracy_req <= 100))


def test_accuracy_requirement_distribution():
    st_ = sample_user_state(np.random.default_rng(3), SystemConfig(n_users=20_000))
    assert st_.accuracy_req.mean() == pytest.approx(70.0, abs=0.2)
    assert st_.accuracy_req.std() == pytest.approx(5.0, abs=0.2)
    assert np.bincount(st_.ap, minlength=4).min() > 4500  # uniform over the 4 access points


def test_same_seed_same_system():
    a = sample_system(np.random.default_rng(11), SystemConfig())
    b = sample_system(np.random.default_rng(11), SystemConfig())
    for field in ("local_flops", "ds_ratio", "ap_rate", "ap_delay", "cloud_rate", "cloud_delay"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("kwargs, message", [
    ({"n_users": 0}, "n_users must be a positive integer"),
    ({"n_servers": 2}, "es_gflops: expected 2 values"),
    ({"es_cores": (10, -24, 16, 32)}, "es_cores: every value must be positive"),
    ({"es_memory_gb": (24.0, 24.0, 0.0, 32.0)}, "es_memory_gb: every value must be positive"),
    ({"es_cores": (10, 24.5, 16, 32)}, "es_cores must be integers"),
    ({"cloud_gflops": -1.0}, "cloud_gflops must be positive"),
    ({"ds_keep_range": (0.5, 1.5)}, "ds_keep_range"),
    ({"distance_m_range": (100.0, 30.0)}, "distance_m_range: lower bound"),
    ({"accuracy_req_std": -1.0}, "accuracy_req_std"),
])
def test_bad_system_config_names_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SystemConfig(**kwargs)
