"""P2, the two-constraint 0/1 knapsack of one edge server: exact against brute force on small
instances and against Gurobi and HiGHS on larger ones, including instances where both bind."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from ecmeta_lib.knapsack import brute_force_p2, solve_p2


def value(saving: np.ndarray, keep: np.ndarray) -> float:
    return float(np.asarray(saving, float)[keep].sum())


def assert_feasible(keep, memory, cores, cap):
    assert keep.dtype == bool
    assert keep.sum() <= cores
    assert np.asarray(memory, float)[keep].sum() <= cap + 1e-9


def highs_p2(saving, memory, cores, cap) -> float:
    """P2 as a MILP solved by HiGHS (scipy), zero optimality gap."""
    n = len(saving)
    cons = LinearConstraint(np.vstack([np.ones(n), memory]), -np.inf, [cores, cap])
    res = milp(-np.asarray(saving, float), constraints=cons, integrality=np.ones(n),
               bounds=Bounds(0, 1), options={"mip_rel_gap": 0.0})
    assert res.status == 0, res.message
    return float(-res.fun)


def gurobi_p2(saving, memory, cores, cap) -> float:
    gp = pytest.importorskip("gurobipy")
    with gp.Env(params={"OutputFlag": 0}) as env, gp.Model(env=env) as model:
        model.Params.MIPGap = 0.0
        model.Params.MIPGapAbs = 0.0
        x = model.addMVar(len(saving), vtype=gp.GRB.BINARY)
        model.addConstr(x.sum() <= cores)
        model.addConstr(np.asarray(memory, float) @ x <= cap)
        model.setObjective(np.asarray(saving, float) @ x, gp.GRB.MAXIMIZE)
        model.optimize()
        assert model.Status == gp.GRB.OPTIMAL
        return float(model.ObjVal)


@st.composite
def small_instances(draw: st.DrawFn):
    n = draw(st.integers(0, 12))
    saving = np.array(draw(st.lists(st.floats(-0.5, 1.0, allow_nan=False), min_size=n,
                                    max_size=n)))
    memory = np.array(draw(st.lists(st.integers(64, 2048), min_size=n, max_size=n)), float)
    cores = draw(st.integers(0, n + 1))
    cap = float(draw(st.integers(0, int(memory.sum()) + 1)))
    return saving, memory, cores, cap


@given(small_instances())
def test_equals_brute_force(inst):
    saving, memory, cores, cap = inst
    keep = solve_p2(saving, memory, cores, cap)
    assert_feasible(keep, memory, cores, cap)
    best = brute_force_p2(saving, memory, cores, cap) if saving.size else 0.0
    assert value(saving, keep) == pytest.approx(best, abs=1e-9)


@given(small_instances())
def test_dynamic_programme_path_is_exact(inst):
    # node_limit=0 forces the DP fallback whenever branch and bound would run
    saving, memory, cores, cap = inst
    keep = solve_p2(saving, memory, cores, cap, node_limit=0)
    assert_feasible(keep, memory, cores, cap)
    best = brute_force_p2(saving, memory, cores, cap) if saving.size else 0.0
    assert value(saving, keep) == pytest.approx(best, abs=1e-9)


def test_ties_and_equal_items():
    saving, memory = np.full(10, 0.1), np.full(10, 500.0)
    keep = solve_p2(saving, memory, 4, 1600.0)  # memory admits 3, cores 4
    assert keep.sum() == 3


def test_nothing_worth_keeping():
    assert not solve_p2(np.array([-0.1, 0.0, -1e-15]), np.array([1, 1, 1]), 3, 10).any()
    assert not solve_p2(np.array([0.5]), np.array([100.0]), 0, 1000.0).any()
    assert not solve_p2(np.array([0.5]), np.array([100.0]), 5, 99.0).any()
    assert solve_p2(np.array([]), np.array([]), 3, 10.0).shape == (0,)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match=r"memory_mb must have shape \(2,\)"):
        solve_p2(np.array([0.1, 0.2]), np.array([1.0, 2.0, 3.0]), 1, 10)
    with pytest.raises(ValueError, match="capacities must be non-negative"):
        solve_p2(np.array([0.1]), np.array([1.0]), -1, 10)
    with pytest.raises(ValueError, match="capacities must be non-negative"):
        solve_p2(np.array([0.1]), np.array([1.0]), 1, -10.0)


def both_binding_instance(rng: np.random.Generator, n: int):
    """Savings like a slot's d^C - d^E (tens to hundreds of ms, a few negative), model memories of
    256-2048 MB, and capacities that make both the cores and the memory bind at the optimum."""
    while True:
        saving = rng.gamma(2.0, 0.05, n) - rng.uniform(0.0, 0.05, n)
        memory = np.rint(rng.uniform(256, 2048, n))
        pos = saving > 0
        if pos.sum() < 4:
            continue
        cores = max(1, int(pos.sum() * rng.uniform(0.3, 0.7)))
        cap = float(np.rint(np.sort(memory[pos])[:cores].sum() * rng.uniform(1.05, 1.8)))
        v = value(saving, solve_p2(saving, memory, cores, cap))
        if (v < value(saving, solve_p2(saving, memory, n, cap)) - 1e-9
                and v < value(saving, solve_p2(saving, memory, cores, 1e12)) - 1e-9):
            return saving, memory, cores, cap


@pytest.mark.parametrize("n", [14, 25, 40, 60])
def test_equals_highs_and_gurobi_when_both_constraints_bind(n):
    rng = np.random.default_rng(n)
    for _ in range(6):
        saving, memory, cores, cap = both_binding_instance(rng, n)
        keep = solve_p2(saving, memory, cores, cap)
        assert_feasible(keep, memory, cores, cap)
        ours = value(saving, keep)
        assert ours == pytest.approx(highs_p2(saving, memory, cores, cap), rel=1e-7, abs=1e-7)
        assert ours == pytest.approx(gurobi_p2(saving, memory, cores, cap), rel=1e-7, abs=1e-7)


@given(st.integers(15, 60), st.integers(0, 2**32 - 1), st.floats(0.05, 1.0), st.floats(0.05, 1.0))
def test_equals_highs_on_random_larger_instances(n, seed, core_share, memory_share):
    rng = np.random.default_rng(seed)
    saving = rng.normal(0.05, 0.08, n)
    memory = np.rint(rng.uniform(64, 2048, n))
    cores = max(0, int(round(n * core_share)))
    cap = float(np.rint(memory.sum() * memory_share))
    keep = solve_p2(saving, memory, cores, cap)
    assert_feasible(keep, memory, cores, cap)
    assert value(saving, keep) == pytest.approx(highs_p2(saving, memory, cores, cap),
                                                rel=1e-7, abs=1e-7)


def test_equals_gurobi_on_many_random_instances():
    pytest.importorskip("gurobipy")
    rng = np.random.default_rng(123)
    for _ in range(25):
        n = int(rng.integers(15, 61))
        saving = rng.normal(0.05, 0.08, n)
        memory = np.rint(rng.uniform(64, 2048, n))
        cores, cap = int(rng.integers(1, n)), float(np.rint(memory.sum() * rng.uniform(0.1, 0.9)))
        keep = solve_p2(saving, memory, cores, cap)
        assert value(saving, keep) == pytest.approx(gurobi_p2(saving, memory, cores, cap),
                                                    rel=1e-7, abs=1e-7)
