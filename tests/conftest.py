"""Shared fixtures and hypothesis strategies: small random systems for property tests."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ecmeta_lib import SystemConfig, make_task_set
from ecmeta_lib.slot import option_table
from ecmeta_lib.system import sample_user_state

# Bounded example counts keep the suite within minutes on a 2-core machine; HYPOTHESIS_PROFILE=dev
# digs deeper locally.
settings.register_profile("ci", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@st.composite
def small_system_configs(draw: st.DrawFn) -> SystemConfig:
    """5-20 users, 1-4 servers, 1-3 models and methods, with capacities small enough to bind."""
    h = draw(st.integers(1, 4))
    cores = tuple(draw(st.lists(st.integers(1, 8), min_size=h, max_size=h)))
    mem_gb = tuple(draw(st.lists(st.floats(0.25, 8.0), min_size=h, max_size=h)))
    flops = tuple(draw(st.lists(st.floats(20.0, 200.0), min_size=h, max_size=h)))
    return SystemConfig(
        n_users=draw(st.integers(5, 20)),
        n_servers=h,
        n_models=draw(st.integers(1, 3)),
        n_methods=draw(st.integers(1, 3)),
        es_gflops=flops,
        es_memory_gb=mem_gb,
        es_cores=cores,
    )


@st.composite
def slot_cases(draw: st.DrawFn):
    """(system, condition, state, table, action (U, 3)) of a random small system and slot."""
    cfg = draw(small_system_configs())
    seed = draw(st.integers(0, 2**31 - 1))
    ts = make_task_set(seed, cfg)
    name = draw(st.sampled_from(sorted(ts.conditions)))
    condition = ts.conditions[name]
    rng = np.random.default_rng(seed + 1)
    state = sample_user_state(rng, cfg)
    table = option_table(ts.system, condition, state)
    u = cfg.n_users
    action = np.stack([rng.integers(0, cfg.n_methods, u), rng.integers(0, cfg.n_servers + 1, u),
                       rng.integers(0, cfg.n_models, u)], axis=1)
    return ts.system, condition, state, table, action


@pytest.fixture(scope="session")
def task_set():
    """The paper-sized task set of seed 0 (80 users, 4 servers)."""
    return make_task_set(0)
