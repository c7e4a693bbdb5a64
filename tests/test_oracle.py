"""The per-slot oracle: exact (brute force), pruning-invariant, solver-invariant, a lower bound."""

from __future__ import annotations

import importlib
import logging
import sys

import numpy as np
import pytest
from conftest import slot_cases
from hypothesis import given
from hypothesis import settings as hsettings

import ecmeta_lib
from ecmeta_lib import SystemConfig, make_task_set
from ecmeta_lib.oracle import GurobiLicenseError, OracleResult, oracle
from ecmeta_lib.policies import greedy_action
from ecmeta_lib.slot import option_table, outcome_of, run_slot
from ecmeta_lib.system import sample_user_state

# fast servers with room for one or two small models: the capacities bind in most slots
TINY = SystemConfig(n_users=4, n_servers=2, n_models=2, n_methods=2, es_gflops=(200.0, 300.0),
                    es_memory_gb=(1.0, 2.0), es_cores=(1, 2))
TINY3 = SystemConfig(n_users=3, n_servers=2, es_gflops=(150.0, 250.0), es_memory_gb=(1.5, 2.0),
                     es_cores=(1, 2))
SMALL = SystemConfig(n_users=15, n_servers=3, es_gflops=(60.0, 80.0, 120.0),
                     es_memory_gb=(2.0, 3.0, 4.0), es_cores=(2, 3, 4))


def _slots(cfg: SystemConfig, task_seed: int, n: int, condition: str = "T1"):
    ts = make_task_set(task_seed, cfg)
    rng = np.random.default_rng(task_seed + 100)
    for _ in range(n):
        state = sample_user_state(rng, cfg)
        yield ts.system, ts[condition], state, option_table(ts.system, ts[condition], state)


def _brute_force(system, table) -> float:
    """Minimum total latency over every combination of every user's feasible options."""
    n_users, n_methods, n_models, n_servers = table.edge_s.shape
    best_acc = table.accuracy.reshape(n_users, -1).max(axis=1)
    thr = np.minimum(table.accuracy_req, best_acc)
    per_user = []
    for u in range(n_users):
        opts = []  # (latency, server or -1, memory)
        for m in range(n_methods):
            if table.accuracy[u, m, 0] >= thr[u]:
                opts.append((table.local_s[u, m], -1, 0.0))
            if table.accuracy[u, m, -1] >= thr[u]:
                opts.append((table.cloud_s[u, m], -1, 0.0))
            for j in range(n_models):
                if table.accuracy[u, m, j] >= thr[u]:
                    for h in range(n_servers):
                        opts.append((table.edge_s[u, m, j, h], h, table.memory_mb[u, j]))
        per_user.append(np.array(opts))
    # every combination at once: (n_combos, U) option indices
    grids = np.meshgrid(*[np.arange(len(o)) for o in per_user], indexing="ij")
    idx = np.stack([g.ravel() for g in grids], axis=1)
    lat = sum(per_user[u][idx[:, u], 0] for u in range(n_users))
    ok = np.ones(idx.shape[0], dtype=bool)
    for h in range(n_servers):
        on = [per_user[u][idx[:, u], 1] == h for u in range(n_users)]
        count = sum(o.astype(int) for o in on)
        mem = sum(np.where(on[u], per_user[u][idx[:, u], 2], 0.0) for u in range(n_users))
        ok &= (count <= system.es_cores[h]) & (mem <= system.es_memory_mb[h])
    return float(lat[ok].min())


def _check_consistent(system, table, res: OracleResult) -> None:
    """Decisions reproduce the reported latency/accuracy and respect C2/C3."""
    n_servers, n_models = system.n_servers, table.accuracy.shape[2]
    out = outcome_of(table, res.ds, res.placement, res.model, n_servers, n_models)
    np.testing.assert_allclose(out.latency, res.latency, rtol=1e-12)
    np.testing.assert_allclose(out.accuracy, res.accuracy, rtol=1e-12)
    np.testing.assert_array_equal(out.model, res.model)
    assert res.total_latency == pytest.approx(out.latency.sum(), rel=1e-12)
    assert res.mean_latency == pytest.approx(out.latency.mean(), rel=1e-12)
    for h in range(n_servers):
        on = res.placement == h + 1
        assert on.sum() <= system.es_cores[h]
        assert table.memory_mb[on, res.model[on]].sum() <= system.es_memory_mb[h] + 1e-9
    # a requirement is missed only by users that no option can satisfy, at maximum accuracy
    best_acc = table.accuracy.reshape(table.accuracy.shape[0], -1).max(axis=1)
    miss = ~res.accuracy_ok
    assert np.all(best_acc[miss] < table.accuracy_req[miss])
    np.testing.assert_array_equal(res.accuracy[miss], best_acc[miss])


def test_public_name_is_the_function_and_module_still_importable():
    assert callable(ecmeta_lib.oracle) and ecmeta_lib.oracle is oracle
    mod = sys.modules["ecmeta_lib.oracle"]
    assert mod.oracle is oracle and mod.OracleResult is OracleResult
    assert importlib.import_module("ecmeta_lib.oracle") is mod


@pytest.mark.parametrize(("cfg", "task_seed"), [(TINY, 0), (TINY, 1), (TINY, 2), (TINY3, 3),
                                                 (TINY3, 4)])
def test_equals_brute_force_on_tiny_instances(cfg, task_seed):
    milp_solved = 0
    for system, cond, state, table in _slots(cfg, task_seed, 8):
        expect = _brute_force(system, table)
        for prune in (True, False):
            res = oracle(system, cond, state, prune=prune)
            assert res.total_latency == pytest.approx(expect, rel=1e-9)
            _check_consistent(system, table, res)
            milp_solved += prune and res.status == "optimal"
    assert milp_solved > 0  # the capacities bind somewhere, so the MILP path is exercised


def test_pruning_keeps_the_optimum_on_paper_sized_slots(task_set):
    for system, cond, state, table in _slots(SystemConfig(), 0, 3):
        pruned = oracle(system, cond, state, table=table)
        full = oracle(system, cond, state, table=table, prune=False)
        assert pruned.total_latency == pytest.approx(full.total_latency, rel=1e-9)
        assert pruned.n_vars < full.n_vars
        _check_consistent(system, table, pruned)
        _check_consistent(system, table, full)


def test_unconstrained_fast_path_is_optimal():
    roomy = SystemConfig(n_users=12, es_cores=(50, 50, 50, 50),
                         es_memory_gb=(500.0, 500.0, 500.0, 500.0))
    for system, cond, state, table in _slots(roomy, 5, 3):
        fast = oracle(system, cond, state)
        assert fast.status == "optimal-unconstrained" and fast.n_vars == 0
        full = oracle(system, cond, state, prune=False)
        assert fast.total_latency == pytest.approx(full.total_latency, rel=1e-9)
        # without binding capacity, each user's fastest feasible option, i.e. greedy, is optimal
        greedy = run_slot(system, table, greedy_action(table))
        assert greedy.latency.sum() == pytest.approx(fast.total_latency, rel=1e-12)



def _gurobi_available() -> bool:
    try:
        import gurobipy as gp

        with gp.Env(params={"OutputFlag": 0}):
            return True
    except Exception:  # noqa: BLE001 - not installed or no licence at all
        return False


needs_gurobi = pytest.mark.skipif(not _gurobi_available(), reason="Gurobi not usable here")


@needs_gurobi
@pytest.mark.parametrize("condition", ["T1", "G2'"])
def test_highs_and_gurobi_agree(condition):
    solved = 0
    for system, cond, state, table in _slots(SMALL, 7, 6, condition):
        for prune in (True, False):
            h = oracle(system, cond, state, backend="highs", table=table, prune=prune)
            g = oracle(system, cond, state, backend="gurobi", table=table, prune=prune)
            assert g.total_latency == pytest.approx(h.total_latency, rel=1e-6)
            _check_consistent(system, table, g)
            solved += g.backend == "gurobi"
    assert solved > 0


def _size_limited() -> bool:
    """Whether this Gurobi licence refuses the unpruned 80-user model (the pip licence does)."""
    system, cond, state, table = next(_slots(SystemConfig(), 0, 1))
    try:
        oracle(system, cond, state, backend="gurobi", table=table, prune=False)
    except GurobiLicenseError:
        return True
    return False


@needs_gurobi
def test_gurobi_size_limit_is_a_clear_error_and_auto_falls_back(caplog, monkeypatch):
    if not _size_limited():
        pytest.skip("this Gurobi licence is not size-limited")
    mod = sys.modules["ecmeta_lib.oracle"]
    monkeypatch.setattr(mod, "_auto_notes", set())
    monkeypatch.setattr(mod, "_gurobi_refused", None)
    system, cond, state, table = next(_slots(SystemConfig(), 0, 1))
    with pytest.raises(GurobiLicenseError, match=r"2000 variables and 2000 constraints") as err:
        oracle(system, cond, state, backend="gurobi", table=table, prune=False)
    assert err.value.__cause__ is not None  # Gurobi's own error is chained
    assert "variables" in str(err.value) and "licence" in str(err.value)
    with caplog.at_level(logging.INFO, logger="ecmeta_lib.oracle"):
        auto = oracle(system, cond, state, backend="auto", table=table, prune=False)
        auto2 = oracle(system, cond, state, backend="auto", table=table, prune=False)
    assert auto.backend == auto2.backend == "highs"
    notes = [r.getMessage() for r in caplog.records if "HiGHS" in r.getMessage()]
    assert len(notes) == 1 and "size-limited licence" in notes[0]  # logged once, with the reason
    ref = oracle(system, cond, state, table=table)
    assert auto.total_latency == pytest.approx(ref.total_latency, rel=1e-9)
    # the pruned model fits within the licence, so 'auto' uses Gurobi for it
    pruned = oracle(system, cond, state, backend="auto", table=table)
    assert pruned.backend == "gurobi"
    assert pruned.total_latency == pytest.approx(ref.total_latency, rel=1e-6)


@hsettings(max_examples=30)
@given(slot_cases())
def test_oracle_never_worse_than_any_action(case):
    system, condition, state, table, action = case
    res = oracle(system, condition, state, table=table)
    _check_consistent(system, table, res)
    for act in (action, greedy_action(table)):
        out = run_slot(system, table, act)
        assert res.total_latency <= out.latency.sum() * (1 + 1e-9) + 1e-12


def test_oracle_never_worse_than_heuristics_on_paper_slots():
    rng = np.random.default_rng(3)
    for system, cond, state, table in _slots(SystemConfig(), 3, 3, "T2"):
        res = oracle(system, cond, state, table=table)
        n_u, n_h = system.n_users, system.n_servers
        actions = [greedy_action(table), np.zeros((n_u, 3), dtype=np.int64),
                   np.stack([np.full(n_u, 2), state.ap + 1, np.full(n_u, 2)], axis=1)]
        actions += [np.stack([rng.integers(0, 3, n_u), rng.integers(0, n_h + 1, n_u),
                              rng.integers(0, 3, n_u)], axis=1) for _ in range(20)]
        for act in actions:
            assert res.mean_latency <= run_slot(system, table, act).mean_latency + 1e-12


def test_bad_inputs_raise_clear_errors():
    system, cond, state, table = next(_slots(TINY, 0, 1))
    with pytest.raises(ValueError, match="unknown oracle backend 'cplex'"):
        oracle(system, cond, state, backend="cplex")
    short = type(state)(**{**state.__dict__, "task_bits": state.task_bits[:2]})
    with pytest.raises(ValueError, match=r"user_state.task_bits has shape \(2,\)"):
        oracle(system, cond, short)
    other = make_task_set(0)["T1"]  # 80 users against a 3-user system
    with pytest.raises(ValueError, match="condition"):
        oracle(system, other, state)
    bad_ap = type(state)(**{**state.__dict__, "ap": np.full(3, 5)})
    with pytest.raises(ValueError, match="user_state.ap"):
        oracle(system, cond, bad_ap)
