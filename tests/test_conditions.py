"""AI service function conditions, upgrades and the named task set (docs/MODEL.md §3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecmeta_lib import (
    CONDITION_NAMES,
    DT_NAMES,
    TEST_NAMES,
    ConditionConfig,
    EdgeCloudEnv,
    SystemConfig,
    make_task_set,
    upgrade_condition,
)
from ecmeta_lib.conditions import sample_condition, with_twin_samples

FIELDS = ("flop_per_bit", "memory_mb", "peak_accuracy", "quality_exponent")


def test_names():
    assert DT_NAMES == ("G1", "G1'", "G1''", "G2", "G2'", "G3")
    assert TEST_NAMES == ("T1", "T2", "T3")
    assert CONDITION_NAMES == DT_NAMES + TEST_NAMES


def test_fresh_condition_ranges_and_order():
    c = sample_condition(np.random.default_rng(0), 500, 3, ConditionConfig())
    assert c.flop_per_bit.shape == c.memory_mb.shape == c.peak_accuracy.shape == (500, 3)
    assert np.all((c.flop_per_bit >= 300) & (c.flop_per_bit <= 3000))
    assert np.all((c.memory_mb >= 256) & (c.memory_mb <= 2048))
    np.testing.assert_array_equal(c.memory_mb, np.rint(c.memory_mb))  # integer MB
    assert np.all((c.peak_accuracy >= 70) & (c.peak_accuracy <= 98))
    assert np.all((c.quality_exponent >= 0.1) & (c.quality_exponent <= 0.4))
    for f in ("flop_per_bit", "memory_mb", "peak_accuracy"):
        assert np.all(np.diff(getattr(c, f), axis=1) >= 0), f  # lightest model first


@given(st.integers(0, 2**32 - 1))
def test_upgrade_factors_and_order(seed):
    cfg = ConditionConfig()
    rng = np.random.default_rng(seed)
    base = sample_condition(rng, 60, 3, cfg)
    up = upgrade_condition(rng, base, cfg, name="up")
    assert up.name == "up"
    flop_ratio = up.flop_per_bit / base.flop_per_bit
    hit = ~np.all(np.isclose(flop_ratio, 1.0), axis=1)
    # one factor per function: the same ratio for all its models, within U[0.6, 0.9]
    np.testing.assert_allclose(flop_ratio, flop_ratio[:, :1] * np.ones((1, 3)), rtol=1e-12)
    assert np.all((flop_ratio[hit, 0] >= 0.6) & (flop_ratio[hit, 0] <= 0.9))
    # memory: one factor, rounded to integer MB and floored at 64 MB
    np.testing.assert_array_equal(up.memory_mb, np.rint(up.memory_mb))
    assert np.all(up.memory_mb[hit] <= np.rint(base.memory_mb[hit] * 0.9) + 0.5)
    assert np.all(up.memory_mb[hit] >= np.maximum(np.floor(base.memory_mb[hit] * 0.6), 64))
    np.testing.assert_array_equal(up.memory_mb[~hit], base.memory_mb[~hit])
    # accuracy: +U[2, 6] points on every model, capped at 99
    gain = up.peak_accuracy - base.peak_accuracy
    capped = up.peak_accuracy >= 99.0 - 1e-12
    ok = hit[:, None] & ~capped
    assert np.all((gain[ok] >= 2 - 1e-9) & (gain[ok] <= 6 + 1e-9))
    assert np.all(up.peak_accuracy <= 99.0)
    np.testing.assert_array_equal(up.peak_accuracy[~hit], base.peak_accuracy[~hit])
    # untouched exponent; the models' order is kept
    np.testing.assert_array_equal(up.quality_exponent, base.quality_exponent)
    for f in ("flop_per_bit", "memory_mb", "peak_accuracy"):
        assert np.all(np.diff(getattr(up, f), axis=1) >= 0), f


def test_upgrade_probability():
    cfg = ConditionConfig()
    rng = np.random.default_rng(1)
    base = sample_condition(rng, 5000, 3, cfg)
    up = upgrade_condition(rng, base, cfg)
    share = np.mean(up.flop_per_bit[:, 0] != base.flop_per_bit[:, 0])
    assert share == pytest.approx(0.8, abs=0.03)


def test_upgrade_memory_floor():
    cfg = ConditionConfig(memory_mb_range=(64.0, 70.0), upgrade_prob=1.0)
    rng = np.random.default_rng(2)
    up = upgrade_condition(rng, sample_condition(rng, 50, 3, cfg), cfg)
    np.testing.assert_array_equal(up.memory_mb, 64.0)


def test_task_set_is_reproducible_from_one_seed():
    a, b = make_task_set(7), make_task_set(7)
    assert set(a.conditions) == set(CONDITION_NAMES)
    for name in CONDITION_NAMES:
        assert a[name].name == name
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(a[name], f), getattr(b[name], f))
    np.testing.assert_array_equal(a.system.ds_ratio, b.system.ds_ratio)
    c = make_task_set(8)
    assert not np.array_equal(a["G1"].flop_per_bit, c["G1"].flop_per_bit)
    assert not np.array_equal(a.system.local_flops, c.system.local_flops)


def test_task_set_structure():
    ts = make_task_set(0)
    assert [c.name for c in ts.dt] == list(DT_NAMES)
    assert [c.name for c in ts.test] == list(TEST_NAMES)
    # G1' and G1'' descend from G1 (lighter); G2' from G2; G3 and T1..T3 are independent draws
    assert np.all(ts["G1'"].flop_per_bit <= ts["G1"].flop_per_bit)
    assert np.all(ts["G1''"].flop_per_bit <= ts["G1'"].flop_per_bit)
    assert np.all(ts["G2'"].flop_per_bit <= ts["G2"].flop_per_bit)
    assert np.all(ts["G1''"].peak_accuracy >= ts["G1"].peak_accuracy)
    assert not np.array_equal(ts["G3"].flop_per_bit, ts["G1"].flop_per_bit)
    assert not np.array_equal(ts["T1"].flop_per_bit, ts["T2"].flop_per_bit)


def test_six_dts_and_three_tests_share_one_system():
    ts = make_task_set(3)
    envs = [EdgeCloudEnv(condition=n, task_set=ts) for n in CONDITION_NAMES]
    assert all(e.system is ts.system for e in envs)
    # built separately from the same seed, every condition still sees the same system
    a = EdgeCloudEnv(condition="G1", task_seed=3).system
    b = EdgeCloudEnv(condition="T3", task_seed=3).system
    for f in ("local_flops", "ds_ratio", "ap_rate", "cloud_rate", "cloud_delay"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_small_task_set_shapes():
    ts = make_task_set(0, SystemConfig(n_users=5, n_servers=1, es_gflops=(50.0,),
                                       es_memory_gb=(1.0,), es_cores=(2,), n_models=2))
    for c in ts.conditions.values():
        assert c.flop_per_bit.shape == (5, 2)


def test_unknown_condition_name_lists_valid_ones():
    ts = make_task_set(0)
    with pytest.raises(KeyError, match=r"unknown condition name 'G4'.*G1, G1'"):
        ts["G4"]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_task_seed(seed):
    with pytest.raises(ValueError, match="task seed must be a non-negative integer"):
        make_task_set(seed)


@pytest.mark.parametrize("kwargs, message", [
    ({"upgrade_prob": 1.5}, "upgrade_prob must be in"),
    ({"peak_accuracy_range": (70.0, 120.0)}, "cannot exceed 100"),
    ({"upgrade_flop_factor": (0.9, 0.6)}, "upgrade_flop_factor: lower bound"),
    ({"memory_mb_range": (0.0, 10.0)}, "memory_mb_range"),
    ({"max_accuracy": 0.0}, "max_accuracy"),
])
def test_bad_condition_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConditionConfig(**kwargs)


def test_twin_samples_are_fresh_draws_that_leave_the_task_set_unchanged() -> None:
    base = make_task_set(7)
    ts = with_twin_samples(base, 3)
    assert list(ts.conditions) == [*base.conditions, "S1", "S2", "S3"]
    for name, cond in base.conditions.items():  # the system, DTs and T1-T3 are untouched
        assert np.array_equal(ts[name].flop_per_bit, cond.flop_per_bit)
    assert ts.system is base.system
    again = with_twin_samples(base, 3)
    assert np.array_equal(again["S2"].peak_accuracy, ts["S2"].peak_accuracy)  # deterministic
    s = [ts[f"S{i}"].flop_per_bit for i in (1, 2, 3)]
    for t in ("T1", "T2", "T3", "G1", "G2", "G3"):  # fresh draws, no copy of a named condition
        assert not any(np.allclose(x, ts[t].flop_per_bit) for x in s)
    assert np.all(np.diff(ts["S1"].flop_per_bit, axis=1) >= 0)  # heavier models heavier
    with pytest.raises(ValueError, match="twin samples"):
        with_twin_samples(base, -1)
