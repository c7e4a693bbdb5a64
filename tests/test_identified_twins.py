"""Twins identified from telemetry (`policies.identified_twins`): exact where observed, the DTs'
mean elsewhere, their error stated; the profile switch that meta-trains on them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_agents import SMALL

from ecmeta_lib.conditions import DT_NAMES, TEST_NAMES, make_task_set
from ecmeta_lib.policies import (
    IdentifyGreedyPolicy,
    dt_mean_condition,
    identified_twins,
    identify_condition,
)
from ecmeta_lib.profiles import get_profile


def test_observed_parameters_are_exact_and_the_rest_is_the_prior() -> None:
    ts = make_task_set(3, SMALL.system, SMALL.conditions)
    prior = dt_mean_condition(ts)
    twins, errors = identified_twins(ts, SMALL, 2)
    assert [e["twin"] for e in errors] == list(DT_NAMES)
    for name, err in zip(DT_NAMES, errors, strict=True):
        true, est = ts[name], twins[name]
        assert est.name == name
        seen = identify_condition(true, ts, SMALL, 2, 4_000, prior).flop_observed
        assert np.allclose(est.flop_per_bit[seen], true.flop_per_bit[seen], rtol=1e-9)
        assert np.array_equal(est.flop_per_bit[~seen], prior.flop_per_bit[~seen])
        assert err["log_rho_error_identified"] == pytest.approx(0.0, abs=1e-9)
        assert err["identified_share"] == pytest.approx(seen.mean())
    for name in TEST_NAMES:  # the test conditions are never touched
        assert twins[name] is ts[name]
    none, _ = identified_twins(ts, SMALL, 0)
    assert all(np.array_equal(none[n].flop_per_bit, prior.flop_per_bit) for n in DT_NAMES)


def test_more_telemetry_means_smaller_twin_error() -> None:
    ts = make_task_set(0, SMALL.system, SMALL.conditions)
    err = [np.mean([e["log_rho_error_all"] for e in identified_twins(ts, SMALL, n)[1]])
           for n in (1, 3, 20)]
    assert err[0] > err[1] > err[2] >= 0.0


def test_identify_greedy_is_unchanged_by_the_refactoring() -> None:
    """`IdentifyGreedyPolicy` fits its twin through `identify_condition` with the DT mean."""
    from ecmeta_lib.env import EdgeCloudEnv

    ts = make_task_set(0, SMALL.system, SMALL.conditions)
    env = EdgeCloudEnv(condition="T2", task_set=ts, config=SMALL)
    env.reset(seed=1)
    pol = IdentifyGreedyPolicy(5)
    pol.reset(env)
    want = identify_condition("T2", ts, SMALL, 5, pol.context_seed, dt_mean_condition(ts))
    assert np.array_equal(pol.twin.flop_per_bit, want.condition.flop_per_bit)


def test_twin_telemetry_slots_is_validated_and_out_of_the_key_at_zero() -> None:
    from ecmeta_lib.cache import run_key

    quick = get_profile("quick")
    assert quick.twin_telemetry_slots == 0
    assert run_key("pearl", quick, 0, 0) != run_key(
        "pearl", replace(quick, twin_telemetry_slots=2), 0, 0)
    with pytest.raises(ValueError, match="twin_telemetry_slots must be an integer >= 0"):
        replace(quick, twin_telemetry_slots=-1)
